//! A small ARM client for the tests, and shared constants.

use std::time::Duration;

use e4k_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub(crate) const SUB: &str = "11111111-2222-3333-4444-555555555555";
pub(crate) const RG: &str = "rg-e4k";
pub(crate) const STABLE: &str = "2025-02-15";
pub(crate) const PREVIEW: &str = "2026-06-15-preview";
pub(crate) const ROOT_CA: &str = include_str!("../fixtures/root-ca.pem");
pub(crate) const INTERMEDIATE_CA: &str = include_str!("../fixtures/intermediate-ca.pem");

/// A PEM file as the service takes it in `encodedCertificate`: with its line breaks removed.
pub(crate) fn one_line(pem: &str) -> String {
    pem.lines().map(str::trim).collect()
}

/// A config with a short LRO delay, so polling is exercised without slowing the suite.
pub(crate) fn fast() -> EmulatorConfig {
    EmulatorConfig {
        lro_delay: Duration::from_millis(30),
        ..EmulatorConfig::default()
    }
}

pub(crate) async fn start(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

pub(crate) fn ns_path(ns: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/namespaces/{ns}"
    )
}

pub(crate) fn child_path(ns: &str, segment: &str, name: &str) -> String {
    format!("{}/{segment}/{name}", ns_path(ns))
}

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an ARM error body.
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// `error.target` of an ARM error body.
    pub(crate) fn target(&self) -> &str {
        self.body["error"]["target"].as_str().unwrap_or_default()
    }

    pub(crate) fn state(&self) -> &str {
        self.body["properties"]["provisioningState"]
            .as_str()
            .unwrap_or_default()
    }
}

/// An ARM client bound to one emulator and api-version.
pub(crate) struct Arm {
    http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) api_version: String,
    pub(crate) token: Option<String>,
}

impl Arm {
    pub(crate) fn new(emulator: &RunningEmulator, api_version: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: emulator.base_url(),
            api_version: api_version.to_owned(),
            token: Some("test-token".into()),
        }
    }

    /// Sends to `path` (relative, `api-version` added) or to an absolute URL (as given).
    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{sep}api-version={}", self.base, self.api_version)
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request is sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body is read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// Polls the `Azure-AsyncOperation` monitor of a write until it is terminal; returns the
    /// final status document.
    pub(crate) async fn wait(&self, reply: &Reply) -> Value {
        let url = reply
            .header("azure-asyncoperation")
            .unwrap_or_else(|| panic!("no Azure-AsyncOperation header: {reply:?}"))
            .to_owned();
        for _ in 0..200 {
            let status = self.get(&url).await;
            assert_eq!(status.status, 200, "{status:?}");
            if status.body["status"] != "InProgress" {
                return status.body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("operation {url} did not finish");
    }

    /// PUTs, expects 200/201, waits for success and returns the GET of the resource.
    pub(crate) async fn put_and_wait(&self, path: &str, body: &Value) -> Value {
        let reply = self.put(path, body).await;
        assert!(matches!(reply.status, 200 | 201), "PUT {path}: {reply:?}");
        let done = self.wait(&reply).await;
        assert_eq!(done["status"], "Succeeded", "{path}: {done}");
        let got = self.get(path).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.state(), "Succeeded");
        got.body
    }

    /// Every item of a list, following `nextLink`; also returns the number of pages.
    pub(crate) async fn list_all(&self, path: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(path.to_owned());
        while let Some(url) = next {
            let page = self.get(&url).await;
            assert_eq!(page.status, 200, "{page:?}");
            pages += 1;
            items.extend(page.body["value"].as_array().cloned().unwrap_or_default());
            next = page.body["nextLink"].as_str().map(str::to_owned);
        }
        (items, pages)
    }
}

/// The names in a list of resources.
pub(crate) fn names(items: &[Value]) -> Vec<&str> {
    items.iter().filter_map(|i| i["name"].as_str()).collect()
}
