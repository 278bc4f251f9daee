//! One group-commit writer for every SQLite store (slashing protection, the audit log, the EVM
//! spend ledger): a thread owns the connection, takes the first waiting job and then whatever else
//! is already queued (up to a bound), and hands the batch to the store, which decides the jobs in
//! order inside one transaction, commits once (one fsync) and answers each job on its own reply
//! channel. Concurrent requests therefore share an fsync, and no job is answered before the commit
//! that holds it.

use tokio::sync::mpsc;

/// The sending side of a writer: submit a job; the store's job type carries its own reply channel.
pub struct GroupCommit<J> {
    jobs: mpsc::Sender<J>,
}

impl<J> Clone for GroupCommit<J> {
    fn clone(&self) -> Self {
        GroupCommit {
            jobs: self.jobs.clone(),
        }
    }
}

/// The writer thread has stopped (it panicked, or its store was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database writer has stopped")]
pub struct WriterStopped;

impl<J: Send + 'static> GroupCommit<J> {
    /// Start a writer thread named `name`. `run_batch` gets between 1 and `max_batch` jobs, in the
    /// order they were submitted, and must answer every one of them. At most `16 * max_batch` jobs
    /// wait; submitters beyond that wait for room (back-pressure, never an unbounded queue).
    pub fn spawn(
        name: &str,
        max_batch: usize,
        mut run_batch: impl FnMut(Vec<J>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let max_batch = max_batch.max(1);
        let (tx, mut rx) = mpsc::channel::<J>(16 * max_batch);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = Vec::with_capacity(max_batch.min(64));
                    batch.push(first);
                    while batch.len() < max_batch {
                        match rx.try_recv() {
                            Ok(j) => batch.push(j),
                            Err(_) => break,
                        }
                    }
                    run_batch(batch);
                }
            })?;
        Ok(GroupCommit { jobs: tx })
    }

    /// Queue a job for the next batch.
    pub async fn submit(&self, job: J) -> Result<(), WriterStopped> {
        self.jobs.send(job).await.map_err(|_| WriterStopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_keep_order_and_answer_every_job() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = batches.clone();
        let w = GroupCommit::spawn(
            "test-writer",
            8,
            move |batch: Vec<(u32, oneshot::Sender<u32>)>| {
                // Slow enough that the others queue behind the first.
                std::thread::sleep(std::time::Duration::from_millis(5));
                seen.lock()
                    .unwrap()
                    .push(batch.iter().map(|(n, _)| *n).collect());
                for (n, reply) in batch {
                    let _ = reply.send(n * 2);
                }
            },
        )
        .unwrap();
        let mut waits = Vec::new();
        for n in 0..100u32 {
            let (tx, rx) = oneshot::channel();
            w.submit((n, tx)).await.unwrap();
            waits.push((n, rx));
        }
        for (n, rx) in waits {
            assert_eq!(rx.await.unwrap(), n * 2);
        }
        let batches = batches.lock().unwrap();
        assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 8));
        assert!(batches.len() < 100, "jobs were grouped");
        let flat: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(flat, (0..100).collect::<Vec<_>>());
    }
}
