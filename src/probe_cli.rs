//! `llm-injector probe URL`: one HTTP GET over loopback, exit 0 on 2xx. The
//! `llm-router` sidecar listens on 127.0.0.1 only, where kubelet's httpGet
//! probes (which dial the pod IP) cannot reach, and its image has no curl.

use std::time::Duration;

use clap::Args;
use http_body_util::Empty;
use hyper::body::Bytes;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The URL to GET, `http://HOST:PORT/PATH`.
    url: hyper::Uri,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
}

async fn get(url: &hyper::Uri) -> Result<u16, String> {
    if url.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs are probed"));
    }
    let host = url.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(connection);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(response.status().as_u16())
}

pub fn run(args: &ProbeArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let timeout = Duration::try_from_secs_f64(args.timeout).map_err(|e| e.to_string())?;
    let status = runtime
        .block_on(async { tokio::time::timeout(timeout, get(&args.url)).await })
        .map_err(|_| format!("{}: no answer within {timeout:?}", args.url))??;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{}: HTTP {status}", args.url))
    }
}
