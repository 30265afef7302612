//! A few threads that run thread look-ups (a store read and the answer's
//! encoding) for the handlers, off the runtime's workers.
//!
//! Why not `spawn_blocking`: it wakes an idle pool thread for every job
//! (a futex call and two context switches), which on the 2-core machine
//! cost more than the look-up itself (docs/performance.md). These threads
//! take every job already waiting before they sleep, so under load a job
//! usually finds one awake. Why not on the worker itself: work done there
//! holds up the requests the worker has not started yet, and so sets their
//! answer floors later when a known key arrives with them
//! (tests/uniform.rs, docs/security.md §4).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub struct ReadPool {
    jobs: Sender<Job>,
}

/// The job did not finish: it panicked.
#[derive(Debug, thiserror::Error)]
#[error("a read job stopped before it answered")]
pub struct Stopped;

impl ReadPool {
    /// Starts `threads` threads; they end when the pool is dropped.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, waiting) = std::sync::mpsc::channel::<Job>();
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..threads {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("meldkluis-read-{i}"))
                .spawn(move || run(&waiting))?;
        }
        Ok(ReadPool { jobs })
    }

    /// Runs `work` on a pool thread and waits (as a task) for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.jobs.send(job).map_err(|_| Stopped)?;
        answered.await.map_err(|_| Stopped)
    }
}

fn run(waiting: &Mutex<Receiver<Job>>) {
    loop {
        let job = match waiting.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return, // the pool is gone
        };
        // A panicking job drops its answer channel (its caller gets
        // `Stopped`); the thread stays for the next one.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panicking_one() {
        let pool = Arc::new(ReadPool::start(2).unwrap());
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
        let panicked = pool.run(|| -> u8 { panic!("a job fails") }).await;
        assert!(panicked.is_err());
        let mut many = tokio::task::JoinSet::new();
        for i in 0..100u32 {
            let pool = pool.clone();
            many.spawn(async move { (i, pool.run(move || i * 2).await.unwrap()) });
        }
        let mut seen = 0;
        while let Some(joined) = many.join_next().await {
            let (i, doubled) = joined.unwrap();
            assert_eq!(doubled, i * 2);
            seen += 1;
        }
        assert_eq!(seen, 100, "both threads still run after the panic");
    }
}
