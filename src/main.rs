//! The `ui-gateway` binary: parse the command line, set up logging, serve until a signal.

use std::process::ExitCode;

use clap::Parser;
use ui_gateway::config::{Cli, Command, ServeArgs};

/// jemalloc for the binary only (the library leaves the choice to whoever links it): per idle
/// session it keeps less resident than glibc's malloc, whose per-thread arenas fragment on the many
/// small allocations a session's Lua state and tracker hold for their whole life (BENCHMARKS.md §13).
#[cfg(all(unix, not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `ui-gateway new DIR`: writes the scaffold and says how to run it.
fn new_site(dir: &std::path::Path) -> ExitCode {
    match ui_gateway::scaffold::create(dir) {
        Ok(_) => {
            print!("{}", ui_gateway::scaffold::next_steps(dir));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ui-gateway: {e}");
            ExitCode::from(1)
        }
    }
}
use ui_gateway::gateway::RunningGateway;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let argv: Vec<String> = std::env::args().collect();
            if let Some(message) = ui_gateway::config::env_error_message(&e, &argv) {
                eprintln!("ui-gateway: {message}");
                return ExitCode::from(2);
            }
            e.exit()
        }
    };
    let mut args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Loadtest(args)) => return ui_gateway::loadtest::main(args),
        Some(Command::New(args)) => return new_site(&args.dir),
        None => cli.serve,
    };
    args.take_positional_site();
    if let Err(e) = ui_gateway::logging::init(&args) {
        eprintln!("ui-gateway: {e}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> ExitCode {
    let running = match RunningGateway::start(&args).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ui-gateway: {e}");
            if let ui_gateway::gateway::StartError::Bind { source, .. } = &e {
                if source.kind() == std::io::ErrorKind::AddrInUse {
                    eprintln!("Another program (perhaps another ui-gateway) uses that port. Pick another with --listen, or let the system choose a free one: --listen 127.0.0.1:0");
                }
            }
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    println!("ui-gateway serving {} on http://{}/", running.gateway.mode.as_str(), running.addr);
    wait_for_signal().await;
    let deadline = args.shutdown_timeout;
    let second_signal = tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("ui-gateway: second signal, exiting now");
        std::process::exit(1);
    });
    let clean = running.shutdown(deadline).await;
    second_signal.abort();
    if clean {
        ExitCode::SUCCESS
    } else {
        tracing::error!("shutdown deadline missed");
        ExitCode::from(1)
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
