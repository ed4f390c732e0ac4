//! Reading the uploaded CA certificate.

use time::OffsetDateTime;
use x509_parser::pem::parse_x509_pem;

/// What the service reports about an uploaded certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateValidity {
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Parses `encodedCertificate` as the real service does: one PEM `CERTIFICATE` block **with its
/// line breaks removed** (the service refuses standard multi-line PEM: Azure/azure-cli#30243,
/// Azure/azure-cli-extensions#8274), or bare base64 DER (whether the real service accepts the
/// latter is unconfirmed; the emulator does).
pub(crate) fn parse_certificate(encoded: &str) -> Result<CertificateValidity, String> {
    let trimmed = encoded.trim();
    if trimmed.contains(['\n', '\r']) {
        return Err(
            "it must be PEM with the line breaks removed (-----BEGIN CERTIFICATE-----MII...-----END CERTIFICATE-----)"
                .into(),
        );
    }
    let body = if trimmed.contains("-----BEGIN") {
        if trimmed.matches(BEGIN).count() != 1 {
            return Err("it must hold exactly one PEM CERTIFICATE block".into());
        }
        trimmed
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(END))
            .ok_or("it must start with -----BEGIN CERTIFICATE----- and end with -----END CERTIFICATE-----")?
    } else {
        trimmed
    };
    let pem_text = format!("{BEGIN}\n{body}\n{END}\n");
    let (_, pem) = parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| format!("it is neither PEM nor base64 DER: {e}"))?;
    if pem.label != "CERTIFICATE" {
        return Err(format!("the PEM block is {:?}, not CERTIFICATE", pem.label));
    }
    let certificate = pem
        .parse_x509()
        .map_err(|e| format!("it is not an X.509 certificate: {e}"))?;
    let validity = certificate.validity();
    let time = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t).map_err(|e| format!("validity out of range: {e}"))
    };
    Ok(CertificateValidity {
        not_before: time(validity.not_before.timestamp())?,
        not_after: time(validity.not_after.timestamp())?,
    })
}
