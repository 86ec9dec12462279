//! Cooperative shutdown: one [`ShutdownTrigger`] fires, every [`Shutdown`] clone notices.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Fires the shutdown. Clones share the same shutdown.
///
/// Dropping every clone without calling [`trigger`](Self::trigger) also counts as a shutdown,
/// so that a crashed owner never leaves servers running forever.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    sender: Arc<watch::Sender<bool>>,
}

impl ShutdownTrigger {
    /// Starts the shutdown; later calls do nothing.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Another listener for this trigger's shutdown.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }
}

/// Listens for the shutdown; cheap to clone and hand to every task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// A new shutdown, not yet triggered.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (
            ShutdownTrigger {
                sender: Arc::new(sender),
            },
            Shutdown { receiver },
        )
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every trigger was dropped, which counts as a shutdown.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT.
///
/// Fails only if the signal handlers cannot be installed.
pub async fn terminate_signal() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_every_clone() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        let late = trigger.subscribe();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn(async move { other.wait().await });
        trigger.trigger();
        waiter.await.expect("waiter finished");
        shutdown.wait().await;
        late.wait().await;
        assert!(shutdown.is_triggered());
        assert!(late.is_triggered());
    }

    #[tokio::test]
    async fn wait_after_trigger_returns_at_once() {
        let (trigger, shutdown) = Shutdown::new();
        trigger.trigger();
        trigger.trigger();
        shutdown.wait().await;
        assert!(shutdown.clone().is_triggered());
    }

    #[tokio::test]
    async fn dropping_every_trigger_counts_as_shutdown() {
        let (trigger, shutdown) = Shutdown::new();
        let copy = trigger.clone();
        drop(trigger);
        assert!(!shutdown.is_triggered());
        drop(copy);
        assert!(shutdown.is_triggered());
        shutdown.wait().await;
    }
}
