//! `llm-injector certs`: a CA and a serving certificate for the webhook's
//! Service, for installs with plain manifests (kubectl) or an existing Secret.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
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
    /// How long the CA is valid: days (`3650d`) or hours (`8760h`).
    #[arg(long, default_value = "3650d", value_parser = parse_validity)]
    ca_validity: Duration,
    /// How long the serving certificate is valid (at most the CA's).
    #[arg(long, default_value = "365d", value_parser = parse_validity)]
    validity: Duration,
}

/// A validity as whole days (`365d`) or hours (`72h`), at least an hour.
fn parse_validity(text: &str) -> Result<Duration, String> {
    let wrong = || format!("{text:?} is not a validity such as 365d or 72h");
    let (number, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let hours: u64 = match unit {
        "d" => 24,
        "h" => 1,
        _ => return Err(wrong()),
    };
    let count: u64 = number.parse().map_err(|_| wrong())?;
    match count.checked_mul(hours) {
        Some(0) | None => Err(wrong()),
        Some(hours) if hours > 24 * 365 * 1000 => Err(format!("{text:?} is over 1000 years")),
        Some(hours) => Ok(Duration::from_secs(hours * 3600)),
    }
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
    fn validities() {
        let cases = [
            ("365d", Some(365 * 24)),
            ("72h", Some(72)),
            (" 10d ", Some(240)),
            ("0d", None),
            ("1y", None),
            ("d", None),
            ("-1d", None),
            ("1.5d", None),
            ("365000d", Some(365_000 * 24)),
            ("365001d", None),
            ("", None),
        ];
        for (text, hours) in cases {
            assert_eq!(
                parse_validity(text).ok(),
                hours.map(|h: u64| Duration::from_secs(h * 3600)),
                "{text:?}"
            );
        }
    }

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
