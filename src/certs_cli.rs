//! `llm-injector certs`: a CA and a serving certificate for the webhook's
//! Service, for installs with plain manifests (kubectl) or an existing Secret.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use llm_injector::duration::parse_validity;
use llm_injector::server::tls::{Validity, generate};

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, default_value = "llm-injector")]
    service: String,
    /// Namespace of the Service.
    #[arg(short = 'n', long, default_value = "llm-system")]
    namespace: String,
    /// Directory to write ca.crt, tls.crt and tls.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,
    /// How long the CA is valid: days (`3650d`) or a duration (`8760h`).
    #[arg(long, default_value = "3650d", value_parser = parse_validity)]
    ca_validity: Duration,
    /// How long the serving certificate is valid (at most the CA's).
    #[arg(long, default_value = "365d", value_parser = parse_validity)]
    validity: Duration,
}

/// The DNS names the apiserver may use to reach the Service.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

pub fn run(args: &CertsArgs) -> Result<(), String> {
    let files = ["ca.crt", "tls.crt", "tls.key"].map(|f| args.out_dir.join(f));
    if !args.force
        && let Some(existing) = files.iter().find(|f| f.exists())
    {
        return Err(format!(
            "{} exists; pass --force to overwrite, or choose another --out-dir",
            existing.display()
        ));
    }
    let names = service_names(&args.service, &args.namespace);
    let validity = Validity {
        ca: args.ca_validity,
        leaf: args.validity,
    };
    let generated = generate(
        &format!("{}.{}.svc", args.service, args.namespace),
        &names,
        validity,
    )
    .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    let write = |path: &PathBuf, text: &str, private: bool| -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    };
    write(&files[0], &generated.ca_pem, false)?;
    write(&files[1], &generated.cert_pem, false)?;
    write(&files[2], &generated.key_pem, true)?;
    let dir = args.out_dir.display();
    println!(
        "wrote {dir}/ca.crt (valid {} days), {dir}/tls.crt (valid {} days), {dir}/tls.key for {}\n\
         next:\n  kubectl -n {ns} create secret tls llm-injector-tls --cert={dir}/tls.crt --key={dir}/tls.key\n  \
         put the caBundle into webhook-config/*.yaml: base64 -w0 {dir}/ca.crt",
        validity.ca.as_secs() / 86_400,
        validity.leaf.min(validity.ca).as_secs() / 86_400,
        names.join(", "),
        ns = args.namespace,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_every_service_form() {
        assert_eq!(
            service_names("hook", "sys"),
            [
                "hook",
                "hook.sys",
                "hook.sys.svc",
                "hook.sys.svc.cluster.local"
            ]
        );
    }
}
