//! The background side of the service: the email relay and worker, and
//! the job scheduler. `loan-tracker serve` runs them beside the API,
//! `serve --no-worker` leaves them out, and `loan-tracker worker` runs only
//! them, so delivery can be scaled and deployed apart from the API.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::AppState;
use crate::notifications::delivery::{DeliveryContext, EmailQueue, run_relay};

/// Running background tasks, stopped together.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub delivery: Arc<DeliveryContext>,
}

impl Background {
    /// Starts the relay and the email worker, and the scheduler unless
    /// `SCHEDULER_ENABLED=false`.
    pub async fn start(state: AppState) -> anyhow::Result<Background> {
        let queue = EmailQueue::connect(&state.config).await?;
        let delivery = Arc::new(DeliveryContext::new(state.clone())?);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tracing::info!(
            queue = queue.backend_name(),
            smtp = %crate::notifications::email::describe_smtp(&state.config),
            scheduler = state.config.scheduler_enabled,
            "background work starting"
        );
        tasks.spawn(run_relay(
            state.clone(),
            queue.clone(),
            delivery.max_attempts,
            stopped.clone(),
        ));
        {
            let delivery = Arc::clone(&delivery);
            let stopped = stopped.clone();
            tasks.spawn(async move {
                // The worker stops on a storage error (the database or Redis
                // away); start it again, backing off, until asked to stop.
                let mut backoff = Duration::from_secs(1);
                loop {
                    let result = queue
                        .run_worker(Arc::clone(&delivery), stopped.clone())
                        .await;
                    if *stopped.borrow() {
                        return;
                    }
                    if let Err(error) = result {
                        tracing::error!(
                            error = format!("{error:#}"),
                            ?backoff,
                            "email worker stopped; restarting"
                        );
                    }
                    let mut stopping = stopped.clone();
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stopping.wait_for(|stop| *stop) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            });
        }
        if state.config.scheduler_enabled {
            tasks.spawn(crate::jobs::scheduler::run_schedule(state.clone(), stopped));
        }
        Ok(Background {
            stop,
            tasks,
            delivery,
        })
    }

    /// Asks every task to stop and waits up to `grace` for jobs in hand to
    /// finish.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let finished = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!("background tasks did not stop in time; aborting them");
            self.tasks.abort_all();
        }
    }
}
