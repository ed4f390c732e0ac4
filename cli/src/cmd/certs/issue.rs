//! `e4k certs init` and `e4k certs create`: a CA hierarchy, and leaf certificates one at a
//! time or in bulk (with a progress bar).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use e4k_provisioning::certs::{
    self, CertificateAuthority, InitOptions, KeyFormat, LeafTemplate, Password, PkiLayout, Profile,
    San,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{CreateArgs, InitArgs, KEY_PASSWORD_ENV, PASSWORD_ENV, ProfileArg, protection};
use crate::output::{Output, usage};

pub(super) fn init(args: InitArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let options = InitOptions {
        key_type: args.key.key_type()?,
        protection: protection(&args.password, PASSWORD_ENV, "the CA keys")?,
        dir: args.dir,
        name: args.name,
        root_not_after: args.root_not_after,
        intermediate_not_after: args.intermediate_not_after,
        force: args.force,
    };
    let report = certs::init(&options)?;
    out.emit(&report, |w| {
        writeln!(w, "root CA:         {}", report.files.root_cert.display())?;
        writeln!(w, "  subject        {}", report.root.subject)?;
        writeln!(w, "  valid until    {}", report.root.not_after)?;
        writeln!(w, "  sha256         {}", report.root.sha256)?;
        writeln!(
            w,
            "intermediate CA: {}",
            report.files.intermediate_cert.display()
        )?;
        writeln!(w, "  subject        {}", report.intermediate.subject)?;
        writeln!(w, "  valid until    {}", report.intermediate.not_after)?;
        writeln!(w, "  sha256         {}", report.intermediate.sha256)?;
        let state = if report.encrypted {
            "encrypted"
        } else {
            "NOT encrypted"
        };
        writeln!(
            w,
            "root key:        {} ({state})",
            report.files.root_key.display()
        )?;
        writeln!(
            w,
            "intermediate key: {} ({state})",
            report.files.intermediate_key.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape of `e4k certs create`.
#[derive(Debug, Serialize)]
struct CreateOutput {
    /// The signing CA certificate.
    ca: PathBuf,
    /// One entry per certificate.
    certificates: Vec<certs::LeafReport>,
}

pub(super) fn create(args: CreateArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let layout = PkiLayout::new(&args.dir);
    let (ca_cert, ca_key) = match (args.ca.clone(), args.ca_key.clone()) {
        (Some(cert), Some(key)) => (cert, key),
        _ => (layout.intermediate_cert, layout.intermediate_key),
    };
    if args.key_format == KeyFormat::Sec1 && !args.password.no_password {
        return Err(usage(
            "--key-format sec1 writes an unencrypted key: add --no-password --insecure, or use pkcs8 for an encrypted key",
        ));
    }
    let sans = args
        .sans
        .iter()
        .map(|s| San::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let key_type = args.key.key_type()?;
    let protection = protection(&args.password, KEY_PASSWORD_ENV, "the new private key")?;
    if args.ca.is_none() && !ca_cert.exists() {
        return Err(usage(format!(
            "no CA at {}: create one with `e4k certs init --dir {}`, or give --ca and --ca-key",
            ca_cert.display(),
            args.dir.display()
        )));
    }
    let ca_password = Password::from_file_or_env(args.ca_password_file.as_deref(), PASSWORD_ENV)?;
    let ca = CertificateAuthority::load(
        &ca_cert,
        &ca_key,
        ca_password.as_ref(),
        "--ca-password-file FILE or E4K_PASSWORD",
    )
    .with_context(|| format!("cannot use the CA {}", ca_cert.display()))?;

    let bulk_names = match (&args.count, &args.name_template, &args.names_file) {
        (Some(count), Some(template), None) => Some(certs::names_from_template(template, *count)?),
        (None, None, Some(file)) => Some(certs::names_from_file(file)?),
        _ => None,
    };
    let template = LeafTemplate {
        profile: match args.profile {
            ProfileArg::Client => Profile::Client,
            ProfileArg::Server => Profile::Server,
        },
        key_type,
        not_after: args.not_after,
        key_format: args.key_format,
        protection,
        bundle: args.bundle,
    };
    let jobs = match bulk_names {
        Some(names) => {
            if !sans.is_empty() {
                return Err(usage(
                    "--san cannot be used in bulk mode: each certificate would carry the same names",
                ));
            }
            template.bulk(names, &args.out_dir)?
        }
        None => {
            let name = args.name.clone().ok_or_else(|| {
                usage("give a NAME, or --count with --name-template, or --names-file")
            })?;
            template.single(name, sans, args.cert_file.clone(), args.key_file.clone())
        }
    };

    let bar = if jobs.len() > 1 && out.progress_allowed() {
        let bar = ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} signing {pos}/{len} [{bar:30}] {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let reports = ca.issue_to_files(&jobs, args.force, &|| bar.inc(1))?;
    bar.finish_and_clear();

    let output = CreateOutput {
        ca: ca_cert,
        certificates: reports,
    };
    out.emit(&output, |w| {
        if output.certificates.len() > 1 {
            return writeln!(
                w,
                "issued {} certificates into {} (signed by {})",
                output.certificates.len(),
                args.out_dir.display(),
                output.ca.display()
            );
        }
        for report in &output.certificates {
            writeln!(w, "certificate: {}", report.files.cert.display())?;
            writeln!(w, "  subject      {}", report.certificate.subject)?;
            writeln!(w, "  valid until  {}", report.certificate.not_after)?;
            writeln!(w, "  sha256       {}", report.certificate.sha256)?;
            let state = if report.encrypted {
                "encrypted"
            } else {
                "NOT encrypted"
            };
            writeln!(w, "private key: {} ({state})", report.files.key.display())?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
