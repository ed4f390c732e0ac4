//! How a connector authenticates to each broker: X.509 client certificates, service
//! account tokens, username and password; exactly one method per connection.

use std::path::Path;

use crate::config::crd::{
    ApiVersion, Keys, RawBasic, RawKubernetes, RawLocalConnection, RawRemoteConnection, join,
};
use crate::config::files::ClientCertFiles;
use crate::config::report::Site;
use crate::config::resolve::Authentication;

use super::connection::kubernetes_name;
use super::{Ctx, FileCheck};

/// Default `localBrokerConnection.authentication.kubernetes.secretPath`.
const DEFAULT_SAT_DIR: &str = "/var/run/serviceaccount/localbroker";

/// The `authentication` keys that are set, as spelled.
fn methods_set(keys: &Keys, methods: &[&str]) -> Vec<String> {
    methods
        .iter()
        .filter_map(|method| keys.get(method))
        .map(|key| format!("`{}`", key.spelled))
        .collect()
}

/// Reports an `authentication` mapping that sets more than one method.
fn check_single_method(parent: &str, keys: &Keys, methods: &[&str], ctx: &mut Ctx<'_>) {
    let set = methods_set(keys, methods);
    if set.len() > 1 {
        let site = Site {
            origin: ctx.origin.clone(),
            field: parent.to_owned(),
            location: keys.location,
        };
        ctx.report.error(
            &site,
            format!(
                "`authentication` sets {}; keep exactly one",
                set.join(" and ")
            ),
        );
    }
}

pub(super) fn remote_authentication(
    connection: &str,
    remote: &RawRemoteConnection,
    tls: bool,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Authentication> {
    let Some(auth) = &remote.authentication else {
        ctx.error(
            connection,
            &remote.keys,
            "authentication",
            "`authentication` is missing; set x509 with the client certificate secret".to_owned(),
        );
        return None;
    };
    let parent = join(connection, "authentication");
    check_single_method(
        &parent,
        &auth.keys,
        &["x509", "systemAssignedManagedIdentity", "basic"],
        ctx,
    );
    if let Some(x509) = &auth.x509 {
        let x509_parent = join(&parent, "x509");
        let secret_field = "clientK8sSecret";
        if !tls {
            ctx.error(
                &parent,
                &auth.keys,
                "x509",
                "x509 authentication needs TLS; set tls.tlsEnabled: true".to_owned(),
            );
        }
        let Some(secret) = &x509.secret else {
            let spelling = match ctx.version {
                ApiVersion::V1alpha4 => "clientK8sSecret",
                ApiVersion::V1beta1 => "secretName",
            };
            ctx.error(
                &parent,
                &auth.keys,
                "x509",
                format!("x509 needs the client certificate secret; set `{spelling}`"),
            );
            return None;
        };
        let secret = kubernetes_name(&x509_parent, &x509.keys, secret_field, secret, ctx)?;
        let files = ClientCertFiles::new(&ctx.options.secrets_dir, &secret);
        let site = ctx.site(&x509_parent, &x509.keys, secret_field);
        file_checks.push((FileCheck::ClientCert(files.clone()), site));
        Some(Authentication::X509(files))
    } else if let Some(identity) = &auth.system_assigned_managed_identity {
        crate::config::jwt::managed_identity(&parent, &auth.keys, identity, tls, ctx)
    } else if let Some(basic) = &auth.basic {
        basic_authentication(&join(&parent, "basic"), basic, ctx, file_checks)
    } else {
        ctx.error(
            connection,
            &remote.keys,
            "authentication",
            "`authentication` sets no method; set x509 with the client certificate secret"
                .to_owned(),
        );
        None
    }
}

pub(super) fn local_authentication(
    connection: &str,
    local: &RawLocalConnection,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Authentication> {
    let parent = join(connection, "authentication");
    let default = RawKubernetes::default();
    let (kubernetes, site) = match &local.authentication {
        Some(auth) => {
            check_single_method(&parent, &auth.keys, &["kubernetes", "basic"], ctx);
            if let Some(basic) = &auth.basic {
                return basic_authentication(&join(&parent, "basic"), basic, ctx, file_checks);
            }
            let site = ctx.site(&parent, &auth.keys, "kubernetes");
            (auth.kubernetes.as_ref().unwrap_or(&default), site)
        }
        None => (
            &default,
            ctx.site(connection, &local.keys, "authentication"),
        ),
    };
    let dir = kubernetes.secret_path.as_deref().unwrap_or(DEFAULT_SAT_DIR);
    let token_name =
        kubernetes
            .service_account_token_name
            .as_deref()
            .unwrap_or(match ctx.version {
                ApiVersion::V1alpha4 => "sat-token",
                ApiVersion::V1beta1 => "sat",
            });
    let token_file = Path::new(dir).join(token_name);
    file_checks.push((FileCheck::Token(token_file.clone()), site));
    Some(Authentication::ServiceAccountToken { token_file })
}

fn basic_authentication(
    parent: &str,
    basic: &RawBasic,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Authentication> {
    if basic.anonymous == Some(true) {
        return Some(Authentication::Anonymous);
    }
    let field = "k8sSecretName";
    let Some(secret) = &basic.k8s_secret_name else {
        ctx.error(
            parent,
            &basic.keys,
            field,
            "basic needs `k8sSecretName` (or anonymous: true)".to_owned(),
        );
        return None;
    };
    let secret = kubernetes_name(parent, &basic.keys, field, secret, ctx)?;
    let dir = ctx.options.secrets_dir.join(&secret);
    let username_file = dir.join(basic.username_key.as_deref().unwrap_or("username"));
    let password_file = dir.join(basic.password_key.as_deref().unwrap_or("password"));
    let check = FileCheck::Credentials {
        secret: secret.clone(),
        files: [username_file.clone(), password_file.clone()],
    };
    file_checks.push((check, ctx.site(parent, &basic.keys, field)));
    Some(Authentication::UsernamePassword {
        secret,
        username_file,
        password_file,
    })
}
