//! `host:port` endpoints.

use std::fmt;

use serde::Serialize;

/// Default port of MQTT over TCP.
pub const MQTT_PORT: u16 = 1883;
/// Default port of MQTT over TLS.
pub const MQTTS_PORT: u16 = 8883;
/// Default port of MQTT over secure WebSocket.
pub const WSS_PORT: u16 = 443;
/// Default port of MQTT over plain WebSocket.
pub const WS_PORT: u16 = 80;

/// A broker address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    /// DNS name or IP address; IPv6 without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why an endpoint string is invalid. The `Display` text completes "endpoint `x` is not
/// valid: ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    #[error("it is empty")]
    Empty,
    /// The string starts with a URL scheme.
    #[error("remove the `{0}://` prefix")]
    Scheme(String),
    /// The port is not a number in 1..=65535.
    #[error("port `{0}` is not a number between 1 and 65535")]
    Port(String),
    /// An IPv6 address without brackets.
    #[error("put an IPv6 address in brackets, e.g. [::1]:8883")]
    Ipv6Brackets,
    /// The host is empty or has a character that no host name or address has.
    #[error("host `{0}` is not a valid host name or address")]
    Host(String),
}

impl Endpoint {
    /// Parses `host`, `host:port`, `[ipv6]` or `[ipv6]:port`, using `default_port` when the
    /// port is left out.
    ///
    /// # Errors
    ///
    /// An [`EndpointError`] naming what is wrong.
    pub fn parse(text: &str, default_port: u16) -> Result<Self, EndpointError> {
        if text.is_empty() {
            return Err(EndpointError::Empty);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(EndpointError::Scheme(scheme.to_owned()));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| EndpointError::Host(text.to_owned()))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(EndpointError::Host(text.to_owned())),
                },
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => return Err(EndpointError::Ipv6Brackets),
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !valid_host {
            return Err(EndpointError::Host(host.to_owned()));
        }
        let port = match port {
            None => default_port,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(EndpointError::Port(port.to_owned())),
            },
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str, default_port: u16) -> (String, u16) {
        let endpoint = Endpoint::parse(text, default_port).unwrap();
        (endpoint.host, endpoint.port)
    }

    #[test]
    fn parses_host_and_port() {
        assert_eq!(
            ok("example.westeurope-1.ts.eventgrid.azure.net:8883", 1),
            ("example.westeurope-1.ts.eventgrid.azure.net".into(), 8883)
        );
        assert_eq!(ok("broker", MQTTS_PORT), ("broker".into(), 8883));
        assert_eq!(ok("broker", MQTT_PORT), ("broker".into(), 1883));
        assert_eq!(ok("10.0.0.1:1884", 1), ("10.0.0.1".into(), 1884));
        assert_eq!(ok("[::1]:8883", 1), ("::1".into(), 8883));
        assert_eq!(ok("[fe80::1]", 1883), ("fe80::1".into(), 1883));
    }

    #[test]
    fn displays_round_trip() {
        for text in ["broker:1883", "[::1]:8883"] {
            assert_eq!(Endpoint::parse(text, 1).unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_endpoints() {
        let cases = [
            ("", EndpointError::Empty),
            ("mqtts://broker:8883", EndpointError::Scheme("mqtts".into())),
            ("broker:", EndpointError::Port(String::new())),
            ("broker:0", EndpointError::Port("0".into())),
            ("broker:70000", EndpointError::Port("70000".into())),
            ("broker:x", EndpointError::Port("x".into())),
            ("::1:8883", EndpointError::Ipv6Brackets),
            (":8883", EndpointError::Host(String::new())),
            ("bro ker:1883", EndpointError::Host("bro ker".into())),
            ("[::1]x", EndpointError::Host("[::1]x".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(Endpoint::parse(text, 1883), Err(expected), "{text:?}");
        }
    }
}
