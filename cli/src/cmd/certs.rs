//! `e4k certs …`: arguments and printing around `e4k_provisioning::certs`.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use e4k_provisioning::certs::{
    self, CertificateAuthority, InitOptions, KeyFormat, KeyProtection, KeyType, LeafOutput,
    LeafSpec, NotAfter, Password, PkiLayout, Profile, Purpose, San, ValidationScheme,
    VerifyOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::output::{Output, usage};

/// The environment variable holding the CA key password.
const PASSWORD_ENV: &str = "E4K_PASSWORD";
/// The environment variable holding a new leaf key's password.
const KEY_PASSWORD_ENV: &str = "E4K_KEY_PASSWORD";

// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Create a root CA and an intermediate CA (like `step ca init`, non-interactive).
    ///
    /// Writes DIR/certs/root_ca.crt, DIR/certs/intermediate_ca.crt, DIR/secrets/root_ca_key and
    /// DIR/secrets/intermediate_ca_key. The keys are encrypted (PKCS#8, PBKDF2-SHA256 +
    /// AES-256-CBC) with the password from --password-file or E4K_PASSWORD.
    #[command(after_help = "Example:\n  E4K_PASSWORD=... e4k certs init --dir pki --name factory")]
    Init(InitArgs),
    /// Issue a client (or server) certificate signed by the intermediate CA, or many at once.
    #[command(after_help = "\
Examples:
  e4k certs create mqttbridge mqttbridge.pem mqttbridge.key --no-password --insecure --not-after 2400h
  e4k certs create broker --profile server --san localhost --san 127.0.0.1 --no-password --insecure
  e4k certs create --count 1000 --name-template 'device-{n}' --out-dir devices --no-password --insecure")]
    Create(CreateArgs),
    /// Show certificates: subject, validity, key, usages, SANs, fingerprint, and what each
    /// Event Grid validation scheme reads.
    Inspect {
        /// A PEM (or DER) certificate file; every certificate of a bundle is shown.
        file: PathBuf,
    },
    /// Print the SHA-256 fingerprint (Event Grid thumbprint) of each certificate in a file.
    Fingerprint {
        /// A PEM (or DER) certificate file.
        file: PathBuf,
    },
    /// Validate a certificate's path to trusted CAs and run the Event Grid preflight; exit 1
    /// if any check fails.
    Verify(VerifyArgs),
    /// List every certificate under a directory with the days it has left; exit 1 if any
    /// expires within the window.
    Check {
        /// The directory to search (recursively).
        #[arg(long, default_value = "pki", env = "E4K_PKI_DIR")]
        dir: PathBuf,
        /// The window, e.g. 30d.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        within: time::Duration,
    },
}

/// Where the password of a new key comes from, and the `--no-password --insecure` escape.
#[derive(Debug, Args)]
pub(crate) struct NewKeyPassword {
    /// Read the new key's password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Write the private key unencrypted (needs --insecure).
    #[arg(long, requires = "insecure", conflicts_with = "password_file")]
    no_password: bool,
    /// Confirm an insecure choice such as --no-password.
    #[arg(long)]
    insecure: bool,
}

/// Key type flags, as `step` spells them.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// Key type: EC or RSA.
    #[arg(long, default_value = "EC", value_name = "EC|RSA")]
    kty: String,
    /// EC curve: P-256 (default) or P-384.
    #[arg(long, value_name = "P-256|P-384")]
    crv: Option<String>,
    /// RSA key size: 2048 (default), 3072 or 4096.
    #[arg(long, value_name = "BITS")]
    size: Option<u32>,
}

impl KeyArgs {
    fn key_type(&self) -> anyhow::Result<KeyType> {
        Ok(KeyType::from_flags(
            &self.kty,
            self.crv.as_deref(),
            self.size,
        )?)
    }
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Directory to create the PKI in.
    #[arg(long, default_value = "pki", env = "E4K_PKI_DIR")]
    dir: PathBuf,
    /// Name of the PKI: subjects are "<NAME> Root CA" and "<NAME> Intermediate CA", O=<NAME>.
    #[arg(long, default_value = "e4k")]
    name: String,
    #[command(flatten)]
    key: KeyArgs,
    /// Root CA validity: a duration (87600h, 3650d, 10y) or an RFC 3339 time.
    #[arg(long, default_value = "10y", value_parser = parse_not_after)]
    root_not_after: NotAfter,
    /// Intermediate CA validity: a duration or an RFC 3339 time.
    #[arg(long, default_value = "10y", value_parser = parse_not_after)]
    intermediate_not_after: NotAfter,
    #[command(flatten)]
    password: NewKeyPassword,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The certificate's subject common name (CN), i.e. the Event Grid authentication name.
    #[arg(required_unless_present_any = ["count", "names_file"], conflicts_with_all = ["count", "names_file"])]
    name: Option<String>,
    /// Certificate file to write (default NAME.pem).
    #[arg(requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// Private key file to write (default NAME.key).
    key_file: Option<PathBuf>,
    /// The PKI directory whose intermediate CA signs, unless --ca/--ca-key are given.
    #[arg(long, default_value = "pki", env = "E4K_PKI_DIR")]
    dir: PathBuf,
    /// The signing CA's certificate (default DIR/certs/intermediate_ca.crt).
    #[arg(long, value_name = "CA_CERT", requires = "ca_key")]
    ca: Option<PathBuf>,
    /// The signing CA's private key (default DIR/secrets/intermediate_ca_key).
    #[arg(long, value_name = "CA_KEY", requires = "ca")]
    ca_key: Option<PathBuf>,
    /// Read the CA key's password from this file (default: E4K_PASSWORD).
    #[arg(long, value_name = "FILE")]
    ca_password_file: Option<PathBuf>,
    /// client (EKU clientAuth) or server (EKU serverAuth + clientAuth, SAN = NAME by default).
    #[arg(long, value_enum, default_value_t = ProfileArg::Client)]
    profile: ProfileArg,
    /// Validity: a duration (2400h, 90d, 1y) or an RFC 3339 time.
    #[arg(long, default_value = "90d", value_parser = parse_not_after)]
    not_after: NotAfter,
    /// A subject alternative name: DNS name, IP address, URI (scheme://…) or email; repeatable.
    #[arg(long = "san", value_name = "SAN")]
    sans: Vec<String>,
    #[command(flatten)]
    key: KeyArgs,
    /// How an unencrypted key is written: pkcs8 (default) or sec1 (EC PRIVATE KEY, as step).
    #[arg(long, default_value = "pkcs8", value_parser = parse_key_format)]
    key_format: KeyFormat,
    /// Append the signing CA's certificate to the certificate file (leaf first).
    #[arg(long)]
    bundle: bool,
    #[command(flatten)]
    password: NewKeyPassword,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
    /// Bulk: issue this many certificates named by --name-template.
    #[arg(long, requires = "name_template", conflicts_with = "names_file")]
    count: Option<usize>,
    /// Bulk: the name of each certificate, `{n}` standing for 1..=COUNT.
    #[arg(long, requires = "count")]
    name_template: Option<String>,
    /// Bulk: issue one certificate per name listed in this file (one per line).
    #[arg(long, value_name = "FILE")]
    names_file: Option<PathBuf>,
    /// Bulk: directory for NAME.pem and NAME.key files.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Client,
    Server,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The certificate (extra certificates in the file are used as intermediates).
    file: PathBuf,
    /// Trusted CA certificate file(s): for a client, the CA uploaded to Event Grid.
    #[arg(long, required = true, num_args = 1..)]
    roots: Vec<PathBuf>,
    /// CA certificates that may complete the path.
    #[arg(long, num_args = 1..)]
    intermediates: Vec<PathBuf>,
    /// client (Event Grid preflight) or server.
    #[arg(long, value_enum, default_value_t = ProfileArg::Client)]
    purpose: ProfileArg,
    /// Fail if the certificate expires within this period.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    within: time::Duration,
    /// The Event Grid authentication name (default: the subject common name).
    #[arg(long)]
    auth_name: Option<String>,
    /// Event Grid validation scheme: subject, dns, uri, ip, email or thumbprint.
    #[arg(long, default_value = "subject", value_parser = parse_scheme)]
    scheme: ValidationScheme,
}

fn parse_duration(s: &str) -> Result<time::Duration, String> {
    certs::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_not_after(s: &str) -> Result<NotAfter, String> {
    NotAfter::parse(s).map_err(|e| e.to_string())
}

fn parse_key_format(s: &str) -> Result<KeyFormat, String> {
    s.parse()
        .map_err(|e: e4k_provisioning::Error| e.to_string())
}

fn parse_scheme(s: &str) -> Result<ValidationScheme, String> {
    s.parse()
        .map_err(|e: e4k_provisioning::Error| e.to_string())
}

pub(crate) fn run(command: CertsCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        CertsCommand::Init(args) => init(args, out),
        CertsCommand::Create(args) => create(args, out),
        CertsCommand::Inspect { file } => inspect(&file, out),
        CertsCommand::Fingerprint { file } => fingerprint(&file, out),
        CertsCommand::Verify(args) => verify(args, out),
        CertsCommand::Check { dir, within } => check(&dir, within, out),
    }
}

/// A password from a file, else from an environment variable, else none.
fn password_from(file: Option<&Path>, env: &str) -> anyhow::Result<Option<Password>> {
    if let Some(file) = file {
        return Ok(Some(Password::from_file(file)?));
    }
    match std::env::var(env) {
        Ok(value) if !value.is_empty() => Ok(Some(Password::new(value)?)),
        _ => Ok(None),
    }
}

/// How a new key is protected: encrypted unless `--no-password --insecure`.
fn protection(args: &NewKeyPassword, env: &str, what: &str) -> anyhow::Result<KeyProtection> {
    if args.no_password {
        return Ok(KeyProtection::Plaintext);
    }
    match password_from(args.password_file.as_deref(), env)? {
        Some(password) => Ok(KeyProtection::Encrypted(password)),
        None => Err(usage(format!(
            "{what} would be encrypted but no password was given: use --password-file FILE or \
             {env}, or --no-password --insecure to write it unencrypted"
        ))),
    }
}

fn init(args: InitArgs, out: &Output) -> anyhow::Result<ExitCode> {
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

fn create(args: CreateArgs, out: &Output) -> anyhow::Result<ExitCode> {
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
    let ca_password = password_from(args.ca_password_file.as_deref(), PASSWORD_ENV)?;
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
    let spec = |name: String, sans: Vec<San>| LeafSpec {
        name,
        sans,
        profile: match args.profile {
            ProfileArg::Client => Profile::Client,
            ProfileArg::Server => Profile::Server,
        },
        key_type,
        not_after: args.not_after,
        key_format: args.key_format,
        protection: protection.clone(),
    };
    let jobs: Vec<(LeafSpec, LeafOutput)> = match bulk_names {
        Some(names) => {
            if !sans.is_empty() {
                return Err(usage(
                    "--san cannot be used in bulk mode: each certificate would carry the same names",
                ));
            }
            names
                .into_iter()
                .map(|name| {
                    certs::check_file_name(&name)?;
                    let output = LeafOutput {
                        cert: args.out_dir.join(format!("{name}.pem")),
                        key: args.out_dir.join(format!("{name}.key")),
                        bundle: args.bundle,
                    };
                    Ok((spec(name, Vec::new()), output))
                })
                .collect::<anyhow::Result<_>>()?
        }
        None => {
            let name = args.name.clone().ok_or_else(|| {
                usage("give a NAME, or --count with --name-template, or --names-file")
            })?;
            let output = LeafOutput {
                cert: args
                    .cert_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(format!("{name}.pem"))),
                key: args
                    .key_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(format!("{name}.key"))),
                bundle: args.bundle,
            };
            vec![(spec(name, sans), output)]
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

/// The JSON shape of `e4k certs inspect`.
#[derive(Debug, Serialize)]
struct InspectOutput {
    file: PathBuf,
    certificates: Vec<certs::CertInfo>,
}

fn inspect(file: &Path, out: &Output) -> anyhow::Result<ExitCode> {
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

fn fingerprint(file: &Path, out: &Output) -> anyhow::Result<ExitCode> {
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

fn verify(args: VerifyArgs, out: &Output) -> anyhow::Result<ExitCode> {
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

fn check(dir: &Path, within: time::Duration, out: &Output) -> anyhow::Result<ExitCode> {
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
