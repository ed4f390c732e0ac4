//! The seed walkthrough's steps ("Use MQTT bridge to connect to Azure Event Grid"), shared by
//! every test that runs it through `e4k bridge run`, whatever the bridge authenticates with
//! and whatever stands in for Event Grid: the seed's `mosquitto_pub` / `mosquitto_sub`
//! sessions (a command from the cloud reaches the factory, telemetry reaches the cloud,
//! anomalies arrive as alerts through the shared subscription) and the bridge's `/readyz` and
//! `/metrics` after them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e4k_tests::bridge::metric;
use e4k_tests::process::{LineSubscriber, http_get, wait_until};

use super::bridge::BridgeProcess;

/// How long one step may wait for a subscription or for the bridge.
const WAIT: Duration = Duration::from_secs(20);

/// How the seed's commander (client `mosquitto`, X.509) reaches the cloud broker.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// The TLS port on localhost.
    pub port: u16,
    /// The CA that verifies the broker.
    pub ca: PathBuf,
    /// The commander's certificate (with its intermediate) and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Cloud {
    /// The `mosquitto_pub` / `mosquitto_sub` connection arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-h", "localhost", "-p", &self.port.to_string()]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for (flag, path) in [
            ("--cert", &self.cert),
            ("--key", &self.key),
            ("--cafile", &self.ca),
        ] {
            args.push(flag.to_owned());
            args.push(path.display().to_string());
        }
        args
    }
}

/// The walkthrough against one running bridge.
pub struct Walkthrough<'a> {
    /// Where the commands run.
    pub dir: &'a Path,
    /// The cloud broker, as the commander reaches it.
    pub cloud: Cloud,
    /// The factory broker's port on 127.0.0.1.
    pub local_port: u16,
    /// The bridge's `--metrics-listen` port on 127.0.0.1.
    pub metrics_port: u16,
    /// The bridge (its log goes into failure messages).
    pub bridge: &'a BridgeProcess,
}

impl Walkthrough<'_> {
    /// Every step, as the seed runs them: readiness, command, telemetry, alerts, metrics.
    pub fn run(&self) {
        self.ready();
        self.command_from_cloud();
        self.telemetry_to_cloud();
        self.alerts_through_shared_subscription();
        self.forwards_counted();
    }

    fn local(&self) -> [String; 4] {
        [
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.local_port.to_string(),
        ]
    }

    /// `/readyz` answers 200 with the seed's sessions: 3 instances make 3 main sessions on
    /// each broker, plus 3 members of the ShareTest group on the local broker only (they
    /// publish through their instance's remote main session). `/healthz` and the process
    /// metrics are served.
    pub fn ready(&self) {
        let port = self.metrics_port;
        wait_until("/readyz", WAIT, || {
            matches!(http_get(port, "/readyz"), Some((200, _)))
        });
        let (status, body) = http_get(port, "/healthz").expect("/healthz");
        assert_eq!((status, body.trim()), (200, "ok"));
        let (status, metrics) = http_get(port, "/metrics").expect("/metrics");
        assert_eq!(status, 200);
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "e4k_bridge_connection_up{",
        ] {
            assert!(metrics.contains(name), "no {name} in /metrics:\n{metrics}");
        }
        let (_, ready) = http_get(port, "/readyz").expect("/readyz");
        let ready: serde_json::Value = serde_json::from_str(&ready).expect("/readyz JSON");
        let connections = ready["connections"].as_array().expect("connections");
        assert_eq!(connections.len(), 9, "{ready:#}");
        let remote_ids: Vec<&str> = connections
            .iter()
            .filter(|c| c["broker"] == "remote")
            .filter_map(|c| c["client_id"].as_str())
            .collect();
        assert_eq!(remote_ids, ["e4k-0", "e4k-1", "e4k-2"], "{ready:#}");
        for id in ["e4k-prioritize-alerts-0", "e4k-prioritize-alerts-2"] {
            assert!(
                connections.iter().any(|c| c["client_id"] == id),
                "no session {id}: {ready:#}"
            );
        }
    }

    /// The commander publishes `command` in the cloud; it arrives on the factory broker.
    pub fn command_from_cloud(&self) {
        let mut args: Vec<String> = ["-t", "command", "-i", "sub_1", "-V", "mqttv5"]
            .map(str::to_owned)
            .to_vec();
        args.extend(self.local());
        args.extend(["-C", "1", "-W", "20"].map(str::to_owned));
        let sub = LineSubscriber::start(self.dir, &args);
        let publish = Command::new("mosquitto_pub")
            .args(["-q", "1", "-t", "command", "-d", "-V", "mqttv5"])
            .args(["-m", "this is a command from the cloud!", "-i", "mosquitto"])
            .args(self.cloud.args())
            .current_dir(self.dir)
            .output()
            .expect("mosquitto_pub");
        assert!(publish.status.success(), "{publish:?}");
        assert!(
            String::from_utf8_lossy(&publish.stdout).contains("received PUBACK (Mid: 1, RC:0)"),
            "{publish:?}"
        );
        let got = sub.finish();
        let commands = got
            .iter()
            .filter(|l| *l == "this is a command from the cloud!")
            .count();
        assert_eq!(commands, 1, "{got:#?}\nbridge log:\n{}", self.bridge.log());
    }

    /// `mosquitto_pub` on the factory broker with the seed's arguments.
    fn local_pub(&self, topic: &str, message: &str, repeat: &[&str]) -> Child {
        Command::new("mosquitto_pub")
            .args(["-q", "1", "-t", topic, "-V", "mqttv5", "-m", message])
            .args(self.local())
            .args(repeat)
            .current_dir(self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("mosquitto_pub")
    }

    /// A subscriber in the cloud (the commander's certificate) for `count` messages.
    ///
    /// It announces a Receive Maximum of 1,000 (mosquitto_sub's default is 20): the
    /// emulator's broker keeps only 100 messages beyond a session's in-flight window, so a
    /// subscriber announcing 20 that falls 120 messages behind the 1,000 alerts loses QoS 1
    /// messages there, which Event Grid does not document (emulator/README.md).
    fn cloud_sub(&self, topic: &str, count: usize, verbose: bool) -> LineSubscriber {
        let mut args: Vec<String> = [
            "-q",
            "1",
            "-t",
            topic,
            "-V",
            "mqttv5",
            "-i",
            "mosquitto_sub",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(["-D", "connect", "receive-maximum", "1000"].map(str::to_owned));
        args.extend(["-C".into(), count.to_string(), "-W".into(), "30".into()]);
        if verbose {
            args.push("-v".into());
        }
        args.extend(self.cloud.args());
        LineSubscriber::start(self.dir, &args)
    }

    /// Two publishers on the factory broker send 5 messages each; all 10 arrive in the cloud.
    pub fn telemetry_to_cloud(&self) {
        let telemetry = self.cloud_sub("factory/telemetry/#", 10, true);
        let repeat = ["--repeat", "5", "--repeat-delay", "1"];
        let mut publishers = [
            self.local_pub(
                "factory/telemetry/temperature",
                "this is a temperature measurement!",
                &repeat,
            ),
            self.local_pub(
                "factory/telemetry/humidity",
                "this is a humidity measurement!",
                &repeat,
            ),
        ];
        for publisher in &mut publishers {
            assert!(publisher.wait().expect("mosquitto_pub").success());
        }
        let lines = telemetry.finish();
        let count = |needle: &str| lines.iter().filter(|l| *l == needle).count();
        assert_eq!(
            (
                count("factory/telemetry/temperature this is a temperature measurement!"),
                count("factory/telemetry/humidity this is a humidity measurement!"),
            ),
            (5, 5),
            "{lines:#?}\nbridge log:\n{}",
            self.bridge.log()
        );
    }

    /// Anomalies go to `factory/telemetry/alert` through the ShareTest group members: 500 of
    /// each kind arrive.
    pub fn alerts_through_shared_subscription(&self) {
        let alerts = self.cloud_sub("factory/telemetry/alert", 1000, false);
        let mut publishers = [
            self.local_pub(
                "factory/telemetry/anomaly/high-temperature",
                "this is a temperature alert!",
                &["--repeat", "500"],
            ),
            self.local_pub(
                "factory/telemetry/anomaly/high-humidity",
                "this is a humidity alert!",
                &["--repeat", "500"],
            ),
        ];
        for publisher in &mut publishers {
            assert!(publisher.wait().expect("mosquitto_pub").success());
        }
        let lines = alerts.finish();
        let count = |needle: &str| lines.iter().filter(|l| *l == needle).count();
        assert_eq!(
            (
                count("this is a temperature alert!"),
                count("this is a humidity alert!")
            ),
            (500, 500),
            "/metrics:\n{}\nbridge log:\n{}",
            http_get(self.metrics_port, "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default(),
            self.bridge.log()
        );
    }

    /// `/metrics` counts the forwards per route and direction, drops none, and has the 9
    /// sessions up.
    pub fn forwards_counted(&self) {
        let route = |name: &str| {
            format!(
                "e4k_bridge_messages_forwarded_total{{bridge=\"my-mqtt-bridge\",route=\"{name}\""
            )
        };
        let mut text = String::new();
        // The anomalies also match the telemetry route (as the seed notes), whose copies may
        // still be in flight when the alert subscriber has its 1,000.
        wait_until("forwards counted", Duration::from_secs(10), || {
            text = http_get(self.metrics_port, "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            metric(&text, &route("prioritize-alerts")) >= 1000.0
                && metric(&text, &route("publish-telemetry-same-topic")) >= 1010.0
                && metric(&text, &route("command-from-cloud")) >= 1.0
        });
        assert_eq!(
            metric(
                &text,
                &format!(
                    "{},direction=\"remote-to-local\"}}",
                    route("command-from-cloud")
                )
            ),
            1.0,
            "{text}"
        );
        assert_eq!(
            metric(&text, "e4k_bridge_messages_dropped_total"),
            0.0,
            "{text}"
        );
        assert_eq!(
            metric(&text, "e4k_bridge_connection_up{bridge=\"my-mqtt-bridge\""),
            9.0,
            "{text}"
        );
    }
}
