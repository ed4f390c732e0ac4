//! `e4k certs …`: arguments and printing around `e4k_provisioning::certs`.
//!
//! This module holds the arguments and how a new key's password is chosen; [`issue`] runs
//! `init` and `create`, [`read`] `inspect`, `fingerprint`, `verify` and `check`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use e4k_provisioning::certs::{
    self, KeyFormat, KeyProtection, KeyType, NotAfter, Password, ValidationScheme,
};

use crate::output::{Output, usage};

mod issue;
mod read;

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
        CertsCommand::Init(args) => issue::init(args, out),
        CertsCommand::Create(args) => issue::create(args, out),
        CertsCommand::Inspect { file } => read::inspect(&file, out),
        CertsCommand::Fingerprint { file } => read::fingerprint(&file, out),
        CertsCommand::Verify(args) => read::verify(args, out),
        CertsCommand::Check { dir, within } => read::check(&dir, within, out),
    }
}

/// How a new key is protected: encrypted unless `--no-password --insecure`.
fn protection(args: &NewKeyPassword, env: &str, what: &str) -> anyhow::Result<KeyProtection> {
    if args.no_password {
        return Ok(KeyProtection::Plaintext);
    }
    match Password::from_file_or_env(args.password_file.as_deref(), env)? {
        Some(password) => Ok(KeyProtection::Encrypted(password)),
        None => Err(usage(format!(
            "{what} would be encrypted but no password was given: use --password-file FILE or \
             {env}, or --no-password --insecure to write it unencrypted"
        ))),
    }
}
