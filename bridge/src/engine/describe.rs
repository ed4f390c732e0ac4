//! One-line, actionable descriptions of connection failures.
//!
//! rumqttc nests the interesting error (a rustls alert, a refused TCP connection) a few
//! levels deep, sometimes inside an `io::Error`; [`connection_error`] digs it out and says what
//! it means for a bridge operator.

use std::error::Error as StdError;
use std::io;

use rumqttc_next::{ConnectionError, StateError};
use rustls::{AlertDescription, CertificateError};

/// Describes why a connection attempt failed or a connection was lost.
pub(crate) fn connection_error(error: &ConnectionError) -> String {
    if let Some(tls) = find_rustls(error) {
        return tls_error(tls);
    }
    match error {
        ConnectionError::Timeout(_) => {
            "timed out while connecting (TCP, TLS handshake or CONNACK)".to_owned()
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: CONNACK reason {code:?}")
        }
        ConnectionError::Io(io) => io_error(io),
        ConnectionError::Tls(tls) => format!("TLS: {tls}"),
        ConnectionError::MqttState(state) => state_error(state),
        other => other.to_string(),
    }
}

/// [`connection_error`] for rumqttc's MQTT 3.1.1 client.
pub(crate) fn connection_error_v3(error: &rumqttc::ConnectionError) -> String {
    use rumqttc::ConnectionError as E;
    if let Some(tls) = find_rustls(error) {
        return tls_error(tls);
    }
    match error {
        E::NetworkTimeout => {
            "timed out while connecting (TCP, TLS handshake or CONNACK)".to_owned()
        }
        E::FlushTimeout => "timed out while writing to the broker".to_owned(),
        E::ConnectionRefused(code) => {
            format!("the broker refused the connection: CONNACK return code {code:?}")
        }
        E::Io(io) => io_error(io),
        E::Tls(tls) => format!("TLS: {tls}"),
        E::MqttState(state) => match state {
            rumqttc::StateError::Io(io) => io_error(io),
            rumqttc::StateError::ConnectionAborted => "the broker closed the connection".to_owned(),
            rumqttc::StateError::AwaitPingResp => {
                "no PINGRESP from the broker within the keep-alive; connection considered dead"
                    .to_owned()
            }
            rumqttc::StateError::CollisionTimeout => {
                "the broker did not acknowledge a packet in time (packet id collision)".to_owned()
            }
            other => format!("MQTT protocol error: {other}"),
        },
        other => other.to_string(),
    }
}

fn state_error(error: &StateError) -> String {
    match error {
        StateError::Io(io) => io_error(io),
        StateError::ConnectionAborted => "the broker closed the connection".to_owned(),
        StateError::AwaitPingResp => {
            "no PINGRESP from the broker within the keep-alive; connection considered dead"
                .to_owned()
        }
        StateError::ServerDisconnect {
            reason_code,
            reason_string,
        } => match reason_string {
            Some(reason) => {
                format!("the broker disconnected the bridge: {reason_code:?} ({reason})")
            }
            None => format!("the broker disconnected the bridge: {reason_code:?}"),
        },
        StateError::ConnFail { reason } => {
            format!("the broker refused the connection: CONNACK reason {reason:?}")
        }
        StateError::CollisionTimeout => {
            "the broker did not acknowledge a packet in time (packet id collision)".to_owned()
        }
        other => format!("MQTT protocol error: {other}"),
    }
}

fn io_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is the broker running and listening on this port?)".to_owned()
        }
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            "the broker reset the connection (a TLS client certificate it refused, or an \
             authorization failure, ends this way)"
                .to_owned()
        }
        io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => format!("I/O error: {error}"),
    }
}

/// Walks the source chain (and the payloads of `io::Error`s) for a rustls error.
fn find_rustls<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = error.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls(inner)
        {
            return Some(tls);
        }
        current = error.source();
    }
    None
}

fn tls_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "TLS: the broker's certificate is not signed by \
                 a trusted CA (unknown issuer); set trustedCaCertificateConfigMap (or \
                 --remote-ca-file) to the CA that issued it"
                .to_owned(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS: the broker's certificate does not match the endpoint's host name; use \
                 the host name the certificate was issued for"
                    .to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the broker's certificate has expired".to_owned()
            }
            other => format!("TLS: the broker's certificate is not valid: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateExpired => "TLS: the broker refused the bridge's \
                 client certificate: it has expired; renew the certificate in the secret"
                .to_owned(),
            AlertDescription::UnknownCA => "TLS: the broker refused the bridge's client \
                 certificate: it does not chain to a CA the broker trusts"
                .to_owned(),
            AlertDescription::CertificateRequired => {
                "TLS: the broker requires a client certificate".to_owned()
            }
            AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError => {
                format!("TLS: the broker refused the bridge's client certificate (alert {alert:?})")
            }
            other => format!("TLS: the broker ended the handshake (alert {other:?})"),
        },
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rustls_errors_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let error = ConnectionError::Io(io::Error::new(io::ErrorKind::InvalidData, inner));
        let text = connection_error(&error);
        assert!(text.contains("unknown issuer"), "{text}");

        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateExpired);
        let error = ConnectionError::MqttState(StateError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            alert,
        )));
        assert!(connection_error(&error).contains("expired"));

        let refused = ConnectionError::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(connection_error(&refused).contains("connection refused"));

        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let error = rumqttc::ConnectionError::Io(io::Error::new(io::ErrorKind::InvalidData, inner));
        assert!(connection_error_v3(&error).contains("unknown issuer"));
        let refused =
            rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized);
        assert!(connection_error_v3(&refused).contains("NotAuthorized"));
    }
}
