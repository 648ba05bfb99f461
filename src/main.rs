//! The `loan-tracker` command: `serve` (the default), `worker`,
//! `jobs run`, `migrate`, `create-admin`, `openapi` and `healthcheck`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loan_tracker::config::Config;
use loan_tracker::jobs::{JobName, Trigger};
use loan_tracker::startup;
use loan_tracker::users::domain::{Email, NewPassword, Username};

/// mimalloc rather than the system allocator: a request allocates and
/// frees many small buffers across worker threads, which glibc's arenas
/// serve with lock contention and fragmentation (measured in
/// BENCHMARKS.md: more throughput and a smaller resident set).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t` of
/// the bundled mimalloc 3, `include/mimalloc.h`; the Rust bindings name
/// no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3 keeps memory freed by a thread for a second before giving
/// it back to the system. A writer of combined payments frees a whole
/// transaction's worth of statements at once, so that second held up to
/// 20 MB more resident memory under load (BENCHMARKS.md); after 10 ms,
/// mimalloc 2's default, the throughput is the same.
fn release_freed_memory_promptly() {
    // SAFETY: sets a plain integer option; mimalloc reads it on its
    // next purge, from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10);
    }
}

#[derive(Debug, Parser)]
#[command(name = "loan-tracker", version, about = "Loan-servicing backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations and serve HTTP (the default), with the
    /// email worker and job scheduler in the same process.
    Serve {
        /// Serve only the API; run `loan-tracker worker` elsewhere.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run only the email worker and the job scheduler; on HOST:PORT it
    /// serves nothing but /health/* and /metrics.
    Worker,
    /// Run scheduled jobs by hand.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Print a report (for cron jobs and spreadsheets).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// The journal, for the finance team.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Replay every active loan once through the servicing rules of this
    /// version (the upgrade notes say when): fees charged or waived as the
    /// rules decide, each audited. Prints what changed, as JSON.
    Replay {
        /// Every APPROVED and OVERDUE loan (required: the whole book).
        #[arg(long)]
        all: bool,
    },
    /// Create an ADMIN account (password from ADMIN_PASSWORD, else prompted).
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Write a consistent copy of the embedded SQLite database to PATH
    /// while the service runs (on PostgreSQL: explains pg_dump and fails).
    Backup {
        /// The new backup file; must not exist.
        path: std::path::PathBuf,
    },
    /// Replace the embedded SQLite database with the backup at PATH; the
    /// service must be stopped. The current files are kept aside.
    Restore {
        /// A file written by `loan-tracker backup`.
        path: std::path::PathBuf,
    },
    /// Exit 0 when the service on HOST:PORT answers /health/ready with 200
    /// (for container health checks; needs no curl in the image).
    Healthcheck,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// The portfolio as of today, as `GET /reports/portfolio` gives it.
    Portfolio {
        /// `json` (the whole report) or `csv` (the bucket rows).
        #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
        format: ReportFormat,
    },
    /// Every account's debits, credits and balance, as
    /// `GET /accounting/trial-balance` gives them.
    TrialBalance {
        /// The day (YYYY-MM-DD, not after today); default today.
        #[arg(long)]
        as_of: Option<String>,
        /// `json` or `csv` (one row per account).
        #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
        format: ReportFormat,
    },
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Every line booked from one day to another (inclusive), as CSV on
    /// stdout: the journal's CSV, streamed.
    Export {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Run one job now: payment-reminders, overdue-check or audit-archive.
    Run {
        name: String,
        /// The day to run it for (YYYY-MM-DD); default today.
        #[arg(long)]
        as_of: Option<String>,
    },
}

/// Prints the OpenAPI document the server would serve with `config`
/// (the amount bounds come from it).
fn print_openapi(config: &Config) -> ExitCode {
    match serde_json::to_string_pretty(&loan_tracker::router::openapi_document(config)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    release_freed_memory_promptly();
    let cli = Cli::parse();
    // A missing .env is normal; a malformed one is not. The health check
    // reads it too, so that it probes the port the service listens on.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("error: cannot read .env: {error}");
        return ExitCode::from(2);
    }
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck();
    }
    let config = match Config::from_environment() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // The mail settings are checked now, like every other variable, not
    // when the worker first sends (no connection is made here).
    if let Err(error) = loan_tracker::notifications::email::Mailer::from_config(&config) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let command = cli.command.unwrap_or(Command::Serve { no_worker: false });
    if let Command::Openapi = command {
        return print_openapi(&config);
    }
    let long_running = matches!(command, Command::Serve { .. } | Command::Worker);
    let _flush_logs_at_exit = startup::init_tracing(config.log_format, !long_running);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "fatal");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { no_worker } => {
            serve(
                config,
                Serving::Api {
                    background: !no_worker,
                },
            )
            .await
        }
        Command::Worker => serve(config, Serving::WorkerOnly).await,
        Command::Jobs {
            command: JobsCommand::Run { name, as_of },
        } => run_job(config, &name, as_of.as_deref()).await,
        Command::Report {
            command: ReportCommand::Portfolio { format },
        } => portfolio_report(config, format).await,
        Command::Report {
            command: ReportCommand::TrialBalance { as_of, format },
        } => trial_balance_report(config, as_of.as_deref(), format).await,
        Command::Journal {
            command: JournalCommand::Export { from, to },
        } => export_journal(config, &from, &to).await,
        Command::Backup { path } => {
            let report = loan_tracker::backup::backup(&config, &path).await?;
            println!(
                "backup written to {} ({} bytes)",
                report.destination.display(),
                report.bytes
            );
            Ok(())
        }
        Command::Restore { path } => restore(config, &path).await,
        Command::Migrate => {
            let db = loan_tracker::db::Db::connect(&config).await?;
            startup::migrate(&db, &config, chrono::Utc::now()).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateAdmin { email, username } => create_admin(config, email, username).await,
        Command::Replay { all } => replay(config, all).await,
        Command::Openapi | Command::Healthcheck => Ok(()),
    }
}

/// What a long-running instance serves.
enum Serving {
    /// The API, and with `background` the email worker and the scheduler.
    Api { background: bool },
    /// Only the email worker and the scheduler (and health and metrics).
    WorkerOnly,
}

async fn serve(config: Config, serving: Serving) -> anyhow::Result<()> {
    let _serving = loan_tracker::backup::hold_service_lock(&config)?;
    let address = config.listen_address();
    let state = startup::build_state(config, startup::system_clock()).await?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))?;
    match serving {
        Serving::Api { background } => startup::serve(state, listener, background).await,
        Serving::WorkerOnly => startup::run_worker(state, listener).await,
    }
}

/// `jobs run NAME [--as-of D]`: one run now, its report on stdout.
async fn run_job(config: Config, name: &str, as_of: Option<&str>) -> anyhow::Result<()> {
    let job = JobName::parse(name).ok_or_else(|| {
        anyhow::anyhow!("unknown job {name:?}: payment-reminders, overdue-check or audit-archive")
    })?;
    let state = startup::build_state(config, startup::system_clock()).await?;
    let today = state.today();
    let as_of = match as_of {
        Some(text) => loan_tracker::calendar::parse_date(text)
            .map_err(|error| error.to_string())
            .and_then(|date| loan_tracker::jobs::check_as_of(date, today))
            .map_err(|error| anyhow::anyhow!("--as-of {error}"))?,
        None => today,
    };
    let report = loan_tracker::jobs::run(&state, job, as_of, Trigger::Cli, None).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// `replay --all`.
async fn replay(config: Config, all: bool) -> anyhow::Result<()> {
    anyhow::ensure!(all, "say --all: the replay is of the whole book");
    let state = startup::build_state(config, startup::system_clock()).await?;
    let report = loan_tracker::jobs::replay::replay_active_loans(&state).await?;
    println!("{}", serde_json::to_string(&report)?);
    anyhow::ensure!(
        report.failed.is_empty(),
        "{} loans could not be replayed and were left as they were",
        report.failed.len()
    );
    Ok(())
}

/// `report portfolio`: only reads.
async fn portfolio_report(config: Config, format: ReportFormat) -> anyhow::Result<()> {
    let db = read_only_database(&config).await?;
    let today = loan_tracker::clock::local_date(chrono::Utc::now(), config.timezone);
    let report = loan_tracker::reports::portfolio(&db.read, today, &config.currency).await?;
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string(&report)?),
        ReportFormat::Csv => print!("{}", loan_tracker::reports::csv(&report)),
    }
    Ok(())
}

/// The database a read-only command reads: no migrations, no bootstrap
/// admin (it can run with a read-only role; after an upgrade, `migrate`
/// first).
async fn read_only_database(config: &Config) -> anyhow::Result<loan_tracker::db::Db> {
    loan_tracker::db::Db::connect(config)
        .await
        .map_err(|error| anyhow::anyhow!("cannot connect to the database: {error}"))
}

/// `--NAME YYYY-MM-DD`.
fn date_argument(name: &str, text: &str) -> anyhow::Result<chrono::NaiveDate> {
    loan_tracker::calendar::parse_date(text).map_err(|error| anyhow::anyhow!("--{name} {error}"))
}

/// `report trial-balance`: only reads.
async fn trial_balance_report(
    config: Config,
    as_of: Option<&str>,
    format: ReportFormat,
) -> anyhow::Result<()> {
    let db = read_only_database(&config).await?;
    let today = loan_tracker::clock::local_date(chrono::Utc::now(), config.timezone);
    let as_of = match as_of {
        Some(text) => date_argument("as-of", text)?,
        None => today,
    };
    anyhow::ensure!(as_of <= today, "--as-of must not be after today ({today})");
    let balance =
        loan_tracker::journal::service::trial_balance(&db.read, as_of, &config.currency).await?;
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string(&balance)?),
        ReportFormat::Csv => print!("{}", balance.csv()),
    }
    Ok(())
}

/// `journal export --from D --to D`: the lines booked in those days, as
/// CSV, written out a chunk at a time.
async fn export_journal(config: Config, from: &str, to: &str) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use std::io::Write;
    let filter = loan_tracker::journal::service::JournalFilter {
        from: Some(date_argument("from", from)?),
        to: Some(date_argument("to", to)?),
        ..Default::default()
    };
    let db = read_only_database(&config).await?;
    let rows = loan_tracker::journal::service::csv_stream(db.read.clone(), filter);
    futures_util::pin_mut!(rows);
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = rows.next().await {
        out.write_all(chunk?.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

async fn restore(config: Config, path: &std::path::Path) -> anyhow::Result<()> {
    let report = loan_tracker::backup::restore(&config, path).await?;
    for aside in &report.kept_aside {
        println!("kept the replaced file as {}", aside.display());
    }
    println!(
        "restored {} into {} (schema at {}); start the service to apply newer migrations",
        path.display(),
        report.database.display(),
        report.migration.as_deref().unwrap_or("?")
    );
    Ok(())
}

/// `create-admin`: the password from `ADMIN_PASSWORD`, else prompted.
async fn create_admin(config: Config, email: String, username: String) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let username = Username::parse(username).map_err(|e| anyhow::anyhow!("--username {e}"))?;
    let password = match std::env::var("ADMIN_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => rpassword::prompt_password("Password for the new admin: ")?,
    };
    let password = NewPassword::parse(password).map_err(|e| anyhow::anyhow!("password {e}"))?;
    let state = startup::build_state(config, startup::system_clock()).await?;
    let created =
        loan_tracker::auth::service::ensure_admin(&state, email.clone(), username, password)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    if created {
        println!("created admin {}", email.as_str());
        Ok(())
    } else {
        anyhow::bail!("an account with email {} already exists", email.as_str())
    }
}

/// `GET /health/ready` on this instance over plain HTTP/1.1.
fn healthcheck() -> ExitCode {
    use std::io::{Read, Write};
    let host = std::env::var("HOST")
        .ok()
        .filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::");
    let host = host.unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = std::env::var("PORT")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "8080".to_owned());
    let address = format!("{host}:{port}");
    let timeout = std::time::Duration::from_secs(3);
    let probe = || -> std::io::Result<bool> {
        let socket = std::net::ToSocketAddrs::to_socket_addrs(&address)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&socket, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(
            format!("GET /health/ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut head = [0u8; 32];
        let read = stream.read(&mut head)?;
        Ok(head[..read].starts_with(b"HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("not ready");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unreachable: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_with_mimalloc_3s_default_of_a_second() {
        // Pins the option's position: no neighbouring option defaults to 1000.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
