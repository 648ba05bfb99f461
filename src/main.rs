//! The `loan-tracker` command: `serve` (the default), `migrate`,
//! `create-admin` and `openapi`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loan_tracker::config::Config;
use loan_tracker::startup;
use loan_tracker::users::domain::{Email, NewPassword, Username};

#[derive(Debug, Parser)]
#[command(name = "loan-tracker", version, about = "Loan-servicing backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations and serve HTTP (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Create an ADMIN account (password from ADMIN_PASSWORD, else prompted).
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: String,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command.as_ref().unwrap_or(&Command::Serve) {
        return match serde_json::to_string_pretty(&loan_tracker::http::openapi_document()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    // A missing .env is normal; a malformed one is not.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("error: cannot read .env: {error}");
        return ExitCode::from(2);
    }
    let config = match Config::from_environment() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    startup::init_tracing(config.log_format);
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
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
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
        Command::Serve => {
            let address = config.listen_address();
            let state = startup::build_state(config, startup::system_clock()).await?;
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))?;
            startup::serve(state, listener).await
        }
        Command::Migrate => {
            let db = loan_tracker::db::Db::connect(&config).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateAdmin { email, username } => {
            let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
            let username =
                Username::parse(username).map_err(|e| anyhow::anyhow!("--username {e}"))?;
            let password = match std::env::var("ADMIN_PASSWORD") {
                Ok(password) if !password.is_empty() => password,
                _ => rpassword::prompt_password("Password for the new admin: ")?,
            };
            let password =
                NewPassword::parse(password).map_err(|e| anyhow::anyhow!("password {e}"))?;
            let state = startup::build_state(config, startup::system_clock()).await?;
            let created = loan_tracker::auth::service::ensure_admin(
                &state,
                email.clone(),
                username,
                password,
            )
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
            if created {
                println!("created admin {}", email.as_str());
                Ok(())
            } else {
                anyhow::bail!("an account with email {} already exists", email.as_str())
            }
        }
        Command::Openapi => Ok(()),
    }
}
