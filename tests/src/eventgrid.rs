//! Fixtures of the Event Grid provisioning tests (`provisioning/tests/`, `tests/tests/`): an e4k
//! PKI as `e4k certs init` makes it (the spec uploads its CAs), and a plan then its apply
//! against an ARM endpoint (the emulator).
#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use e4k_provisioning::certs::{self, InitOptions, KeyProtection, KeyType, NotAfter};
use e4k_provisioning::eventgrid::apply::{self, ApplyOptions};
use e4k_provisioning::eventgrid::arm::ArmClient;
use e4k_provisioning::eventgrid::model::Desired;
use e4k_provisioning::eventgrid::plan::{self, Plan};

/// Makes `dir/pki` as `e4k certs init --name NAME` does: EC P-256 CAs valid for 10 years, keys
/// in plain text.
pub fn init_pki(dir: &Path, name: &str) {
    certs::init(&InitOptions {
        dir: dir.join("pki"),
        name: name.into(),
        key_type: KeyType::EcP256,
        root_not_after: NotAfter::parse("10y").expect("10y"),
        intermediate_not_after: NotAfter::parse("10y").expect("10y"),
        protection: KeyProtection::Plaintext,
        force: false,
    })
    .expect("e4k certs init");
}

/// A new directory with `pki/` made by [`init_pki`].
#[must_use]
pub fn pki_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    init_pki(dir.path(), name);
    dir
}

/// The plan from what `arm` has to `desired` (the spec file named `spec` in messages).
pub async fn plan_for(arm: &ArmClient, desired: &Desired, prune: bool, spec: &Path) -> Plan {
    let current = apply::read_current(arm, desired)
        .await
        .expect("read the current state");
    plan::plan(desired, &current, prune, spec).expect("plan")
}

/// [`plan_for`], then applies the plan; returns it.
pub async fn setup(arm: &Arc<ArmClient>, desired: &Desired, prune: bool, spec: &Path) -> Plan {
    let plan = plan_for(arm, desired, prune, spec).await;
    apply::apply(arm, desired, &plan, &ApplyOptions::default(), &|_| {})
        .await
        .expect("apply");
    plan
}
