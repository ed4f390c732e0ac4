//! `e4k certs inspect`, `fingerprint`, `verify` and `check`: reading certificates and
//! printing what they say.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use e4k_provisioning::certs::{self, Purpose, VerifyOptions};
use serde::Serialize;

use super::{ProfileArg, VerifyArgs};
use crate::output::Output;

/// The JSON shape of `e4k certs inspect`.
#[derive(Debug, Serialize)]
struct InspectOutput {
    file: PathBuf,
    certificates: Vec<certs::CertInfo>,
}

pub(super) fn inspect(file: &Path, out: &Output) -> anyhow::Result<ExitCode> {
    let output = InspectOutput {
        file: file.to_owned(),
        certificates: certs::inspect(file)?,
    };
    out.emit(&output, |w| {
        for (i, c) in output.certificates.iter().enumerate() {
            if i > 0 {
                writeln!(w)?;
            }
            let key = match (&c.key.curve, c.key.bits) {
                (Some(curve), _) => format!("{} {curve}", c.key.algorithm),
                (None, Some(bits)) => format!("{} {bits}", c.key.algorithm),
                _ => c.key.algorithm.clone(),
            };
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(", ")
                }
            };
            writeln!(w, "subject:            {}", c.subject)?;
            writeln!(w, "issuer:             {}", c.issuer)?;
            writeln!(w, "serial:             {}", c.serial)?;
            writeln!(w, "not before:         {}", c.not_before)?;
            writeln!(
                w,
                "not after:          {} ({} days left)",
                c.not_after, c.days_left
            )?;
            match (c.is_ca, c.path_len) {
                (true, Some(n)) => writeln!(w, "CA:                 yes, path length {n}")?,
                (true, None) => writeln!(w, "CA:                 yes")?,
                (false, _) => writeln!(w, "CA:                 no")?,
            }
            writeln!(w, "key:                {key}")?;
            writeln!(w, "key usage:          {}", list(&c.key_usage))?;
            writeln!(w, "extended key usage: {}", list(&c.extended_key_usage))?;
            writeln!(w, "DNS SANs:           {}", list(&c.sans.dns))?;
            writeln!(w, "IP SANs:            {}", list(&c.sans.ip))?;
            writeln!(w, "URI SANs:           {}", list(&c.sans.uri))?;
            writeln!(w, "email SANs:         {}", list(&c.sans.email))?;
            writeln!(
                w,
                "subject key id:     {}",
                c.subject_key_id.as_deref().unwrap_or("-")
            )?;
            writeln!(
                w,
                "authority key id:   {}",
                c.authority_key_id.as_deref().unwrap_or("-")
            )?;
            writeln!(w, "sha256:             {}", c.sha256)?;
            writeln!(w, "Event Grid authentication name by validation scheme:")?;
            let eg = &c.eventgrid;
            writeln!(
                w,
                "  SubjectMatchesAuthenticationName  {}",
                eg.subject.as_deref().unwrap_or("-")
            )?;
            writeln!(w, "  DnsMatchesAuthenticationName      {}", list(&eg.dns))?;
            writeln!(w, "  UriMatchesAuthenticationName      {}", list(&eg.uri))?;
            writeln!(w, "  IpMatchesAuthenticationName       {}", list(&eg.ip))?;
            writeln!(w, "  EmailMatchesAuthenticationName    {}", list(&eg.email))?;
            writeln!(w, "  ThumbprintMatch                   {}", eg.thumbprint)?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape of `e4k certs fingerprint`.
#[derive(Debug, Serialize)]
struct FingerprintOutput {
    file: PathBuf,
    fingerprints: Vec<FingerprintEntry>,
}

#[derive(Debug, Serialize)]
struct FingerprintEntry {
    subject: String,
    sha256: String,
}

pub(super) fn fingerprint(file: &Path, out: &Output) -> anyhow::Result<ExitCode> {
    let output = FingerprintOutput {
        file: file.to_owned(),
        fingerprints: certs::inspect(file)?
            .into_iter()
            .map(|c| FingerprintEntry {
                subject: c.subject,
                sha256: c.sha256,
            })
            .collect(),
    };
    out.emit(&output, |w| {
        output
            .fingerprints
            .iter()
            .try_for_each(|f| writeln!(w, "{}", f.sha256))
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(args: VerifyArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let options = VerifyOptions {
        roots: args.roots,
        intermediates: args.intermediates,
        purpose: match args.purpose {
            ProfileArg::Client => Purpose::Client,
            ProfileArg::Server => Purpose::Server,
        },
        within: args.within,
        auth_name: args.auth_name,
        scheme: args.scheme,
        at: None,
    };
    let report = certs::verify(&args.file, &options)?;
    out.emit(&report, |w| {
        writeln!(w, "{}: {}", report.file.display(), report.subject)?;
        for check in &report.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            writeln!(w, "  {mark} {:<12} {}", check.name, check.message)?;
        }
        let failed = report.checks.iter().filter(|c| !c.ok).count();
        if failed == 0 {
            writeln!(w, "all {} checks passed", report.checks.len())
        } else {
            writeln!(w, "{failed} of {} checks failed", report.checks.len())
        }
    })?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) fn check(dir: &Path, within: time::Duration, out: &Output) -> anyhow::Result<ExitCode> {
    let report = certs::check_expiry(dir, within)?;
    out.emit(&report, |w| {
        for c in &report.certificates {
            let status = match c.status {
                certs::ExpiryStatus::Ok => "ok",
                certs::ExpiryStatus::Expiring => "EXPIRING",
                certs::ExpiryStatus::Expired => "EXPIRED",
            };
            writeln!(
                w,
                "{:>6}d  {status:<8}  {}  {}",
                c.days_left,
                c.path.display(),
                c.subject
            )?;
        }
        writeln!(
            w,
            "{} certificate(s), {} expiring within {} days or expired",
            report.certificates.len(),
            report.failing,
            report.within_days
        )
    })?;
    Ok(if report.failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
