//! `replay-server`: the single binary that ingests, stores and serves session replays.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use replay_server::{AppState, Config, SqliteStorage, Storage};

#[derive(Parser, Debug)]
#[command(name = "replay-server", version, about = "Session replay: ingest, storage, viewer")]
struct Cli {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "REPLAY_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    listen: SocketAddr,
    /// Directory of the embedded storage.
    #[arg(long, env = "REPLAY_DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Largest ingest body in bytes, as sent.
    #[arg(long, env = "REPLAY_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024, global = true)]
    max_body_bytes: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ProjectCommand {
    /// Create a project and print its ingest key.
    Create { name: String },
    /// List projects with their ingest keys.
    List,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REPLAY_LOG").unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let storage = SqliteStorage::open(&cli.data_dir).with_context(|| format!("opening {}", cli.data_dir.display()))?;
    match cli.command {
        Some(Command::Project { command: ProjectCommand::Create { name } }) => {
            let p = storage.create_project(&name)?;
            println!("project {} created (id {}), ingest key: {}", p.name, p.id, p.ingest_key);
            Ok(())
        }
        Some(Command::Project { command: ProjectCommand::List }) => {
            for p in storage.projects()? {
                println!("{}\t{}\t{}", p.id, p.name, p.ingest_key);
            }
            Ok(())
        }
        None | Some(Command::Serve) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve(cli, storage))
        }
    }
}

async fn serve(cli: Cli, storage: SqliteStorage) -> anyhow::Result<()> {
    let projects = storage.projects()?;
    let project = match projects.into_iter().next() {
        Some(p) => p,
        None => {
            let p = storage.create_project("default")?;
            println!("created project \"default\"; its ingest key is {}", p.ingest_key);
            p
        }
    };
    if !replay_server::assets::has_web_build() {
        tracing::warn!("this binary was built without the recorder/viewer wasm; run `cargo xtask run`");
    }
    let config = Config { max_body_bytes: cli.max_body_bytes, ..Config::default() };
    let state = AppState::new(Arc::new(storage), config);
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr()?;
    println!("replay-server listening on http://{addr}");
    println!("  viewer:     http://{addr}/viewer/");
    println!("  demo app:   http://{addr}/demo");
    println!("  ingest key: {} (project \"{}\")", project.ingest_key, project.name);
    println!(
        "  embed:      <script src=\"http://{addr}/recorder.js\" data-key=\"{}\" defer></script>",
        project.ingest_key
    );
    tracing::info!(%addr, data_dir = %cli.data_dir.display(), "serving");
    axum::serve(listener, replay_server::app(state)).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish before the process exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
