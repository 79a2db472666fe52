//! `kn serve`: the web app and its JSON API.

use super::args::Place;
use anyhow::Context;
use kn::server::{AppState, ModelWorker};
use kn::source::DEFAULT_MODEL;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `kn serve`'s settings.
#[derive(clap::Args)]
pub struct Serve {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Models to load (repeat the flag for several); the first is the default.
    #[arg(long = "model", default_value = DEFAULT_MODEL)]
    models: Vec<String>,
    /// Where results and edit sets are kept (`results.sqlite`).
    #[arg(long, default_value = "store")]
    data_dir: PathBuf,
    /// ParaRel's data folder (default: $KN_DATA, else the repository's data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The folder of `kn experiment` runs shown on the Experiments page.
    #[arg(long, default_value = "runs")]
    experiments: PathBuf,
    /// The built web client (scripts/app.sh builds dist/).
    #[arg(long, env = "KN_STATIC_DIR")]
    static_dir: Option<PathBuf>,
    /// Required for any --host other than loopback: every API route but
    /// /api/health then needs `Authorization: Bearer TOKEN` (or the cookie
    /// that opening /?token=TOKEN sets). At least 16 characters.
    #[arg(long, env = "KN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The address users reach the server at, when it is not the bound
    /// one (a reverse proxy, a DNS name): its host is accepted in `Host`.
    #[arg(long)]
    public_url: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The server's budgets (GET /api/limits); every request is checked against
/// them before any work starts.
#[derive(clap::Args)]
struct LimitArgs {
    /// Tokens per prompt.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Integration steps m per request.
    #[arg(long, default_value_t = 200)]
    max_steps: usize,
    /// Work units per request: Σ over its prompts of (steps + 1) × tokens × layers.
    #[arg(long, default_value_t = 600_000)]
    max_work: u64,
    /// Megabytes of stored results kept before the least recently used are
    /// evicted (their permalinks then recompute them).
    #[arg(long, default_value_t = 1024)]
    store_max_mb: u64,
}

pub fn run(s: Serve, at: Place) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{}:{}", s.host, s.port)
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(s.host.as_str(), s.port))
                .map_err(anyhow::Error::from)
                .and_then(|mut a| a.next().ok_or_else(|| anyhow::anyhow!("no address")))
        })
        .with_context(|| format!("bad address {}:{}", s.host, s.port))?;
    if !addr.ip().is_loopback() && s.token.is_none() {
        anyhow::bail!(
            "--host {} makes the server reachable from the network, where anyone could run jobs on it: \
             give it a token (--token $(openssl rand -hex 16), or KN_TOKEN) and share the address it prints",
            s.host
        );
    }
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating data dir {}", s.data_dir.display()))?;
    let mut workers = Vec::new();
    for name in &s.models {
        let m = at
            .load(name)
            .with_context(|| format!("loading model `{name}`"))?;
        tracing::info!(model = %name, fingerprint = %m.fingerprint, "loaded");
        workers.push(ModelWorker::spawn(m));
    }
    let static_dir = s.static_dir.or_else(default_static_dir);
    if static_dir.is_none() {
        tracing::warn!(
            "no built web client found (scripts/app.sh builds it into dist/); serving the API only"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let caps = kn::store::Caps {
        result_bytes: s.limits.store_max_mb << 20,
        ..Default::default()
    };
    let store = Arc::new(kn::store::Store::open_with(&s.data_dir, caps)?);
    let data = s.data.unwrap_or_else(kn::pararel::ParaRel::default_dir);
    let dataset = match kn::pararel::ParaRel::load(&data) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("no dataset browser: {e}");
            None
        }
    };
    let mut state = AppState::new(workers, store);
    state.dataset = dataset;
    state.experiments = Some(s.experiments);
    state.limits.max_tokens = s.limits.max_tokens;
    state.limits.max_steps = s.limits.max_steps;
    state.limits.max_work = s.limits.max_work;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        state.access =
            kn::server::Access::for_address(local, s.public_url.as_deref(), s.token.clone())
                .map_err(anyhow::Error::msg)?;
        let shown = s.public_url.clone().unwrap_or_else(|| {
            let host = if local.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                local.ip().to_string()
            };
            format!(
                "http://{}/",
                kn::server::access::authority(&host, local.port())
            )
        });
        match &s.token {
            Some(t) => println!(
                "Knowledge Neuron Studio is running at {}?token={t}",
                shown.trim_end_matches('/').to_string() + "/"
            ),
            None => println!("Knowledge Neuron Studio is running at {shown}"),
        }
        kn::server::serve(Arc::new(state), listener, static_dir).await
    })
}

/// `dist/` beside the working directory or the repository the binary was built in.
fn default_static_dir() -> Option<PathBuf> {
    [
        PathBuf::from("dist"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"),
    ]
    .into_iter()
    .find(|d| d.join("index.html").exists())
}
