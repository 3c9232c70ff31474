//! The auditor actor: the only way into the audit log. It group-commits: leaves that arrive
//! while a batch is being written wait together and go into the next batch, one durable
//! transaction with the tree nodes they complete and the checkpoint that covers them, and
//! nobody is answered before their leaf is durable.
//!
//! The log itself ([`audit_log::AuditLog`]) lives on a dedicated thread ([`LogWriter`], a
//! one-thread `SyncArbiter`), because storage calls block; queries go through the same thread,
//! so every proof is against the checkpoint it is returned with. After a failed write the log
//! fails closed: nothing more is appended, and [`LogHealth`] turns false so that the daemon
//! stops admitting sessions and reports itself not ready.

pub mod audit_log;
pub mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::sync::oneshot;
use wasm_hypervisor_protocol::commitment::Digest;

use wasm_hypervisor_protocol::replay::LogReplay;

use self::audit_log::{Appended, AuditError, AuditLog, NewLeaf, Proven, StoredResult};
use crate::metrics::Metrics;

/// Whether the log still accepts appends; shared with whoever must refuse work without it.
#[derive(Debug, Clone)]
pub struct LogHealth(Arc<AtomicBool>);

impl LogHealth {
    /// False once a write failed: the daemon must stop admitting sessions.
    pub fn is_writable(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn fail(&self) {
        self.0.store(false, Ordering::Release);
    }
}

type Reply = oneshot::Sender<Result<Appended, AuditError>>;

/// The actor every append goes through; batches concurrent appends into one durable write.
pub struct Auditor {
    writer: Addr<LogWriter>,
    metrics: Arc<Metrics>,
    queued: Vec<(NewLeaf, Reply)>,
    writing: bool,
    health: LogHealth,
}

impl Auditor {
    /// Starts the writer thread with an opened log, and the auditor on `arbiter`. The daemon
    /// gives it the supervisor's: every session's two appends then pass between the two
    /// actors without waking another thread.
    pub fn start_with(
        log: AuditLog,
        metrics: Arc<Metrics>,
        arbiter: &ArbiterHandle,
    ) -> (Addr<Self>, LogHealth) {
        metrics.log_grew(log.size());
        let health = LogHealth(Arc::new(AtomicBool::new(true)));
        // The factory must be `Sync`; its one thread takes the log exactly once.
        let log = Mutex::new(Some(log));
        let writer = SyncArbiter::start_with_thread_builder(
            1,
            || std::thread::Builder::new().name("audit-log".into()),
            move || LogWriter {
                log: log.lock().ok().and_then(|mut log| log.take()),
            },
        );
        let auditor_health = health.clone();
        let auditor = Self::start_in_arbiter(arbiter, move |_| Self {
            writer,
            metrics,
            queued: Vec::new(),
            writing: false,
            health: auditor_health,
        });
        (auditor, health)
    }

    /// Writes everything queued as one batch, unless a batch is already being written: then
    /// the queue waits for it and becomes the next batch.
    fn write_queued(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queued.is_empty() {
            return;
        }
        let (leaves, replies): (Vec<NewLeaf>, Vec<Reply>) =
            std::mem::take(&mut self.queued).into_iter().unzip();
        if !self.health.is_writable() {
            return reply_all(replies, Err(AuditError::Unavailable));
        }
        self.writing = true;
        self.writer
            .send(WriteBatch(leaves))
            .into_actor(self)
            .map(move |written, auditor, ctx| {
                auditor.writing = false;
                match written.unwrap_or(Err(AuditError::Unavailable)) {
                    Ok(appended) => {
                        if let Some(last) = appended.last() {
                            auditor.metrics.log_grew(last.entry.index + 1);
                        }
                        for (reply, appended) in replies.into_iter().zip(appended) {
                            let _ = reply.send(Ok(appended));
                        }
                    }
                    Err(error) => {
                        log::error!("audit log write failed, refusing further work: {error}");
                        auditor.health.fail();
                        reply_all(replies, Err(error));
                    }
                }
                auditor.write_queued(ctx);
            })
            .spawn(ctx);
    }
}

fn reply_all(replies: Vec<Reply>, result: Result<Appended, AuditError>) {
    for reply in replies {
        // A caller that went away needs no answer.
        let _ = reply.send(result.clone());
    }
}

impl Actor for Auditor {
    type Context = Context<Self>;
}

/// Appends one leaf (with the response body it carries, if any); answers once it is durable
/// and covered by a checkpoint.
#[derive(Message)]
#[rtype(result = "Result<Appended, AuditError>")]
pub(crate) struct Append(pub(crate) NewLeaf);

impl Handler<Append> for Auditor {
    type Result = ResponseFuture<Result<Appended, AuditError>>;

    fn handle(&mut self, Append(leaf): Append, ctx: &mut Self::Context) -> Self::Result {
        let (reply, appended) = oneshot::channel();
        self.queued.push((leaf, reply));
        self.write_queued(ctx);
        Box::pin(async move { appended.await.unwrap_or(Err(AuditError::Unavailable)) })
    }
}

/// Re-verifies every stored leaf in the background, a page at a time so that appends go on
/// between pages; a log that does not verify fails closed. Answers with the leaves verified.
#[derive(Message)]
#[rtype(result = "Result<u64, AuditError>")]
pub struct Scrub;

impl Handler<Scrub> for Auditor {
    type Result = ResponseFuture<Result<u64, AuditError>>;

    fn handle(&mut self, _: Scrub, _: &mut Self::Context) -> Self::Result {
        let writer = self.writer.clone();
        let health = self.health.clone();
        Box::pin(async move {
            let mut replay = LogReplay::default();
            loop {
                let page = writer.send(Ask(ScrubPage(replay))).await;
                match page.unwrap_or(Err(AuditError::Unavailable)) {
                    Ok((advanced, true)) => return Ok(advanced.size()),
                    Ok((advanced, false)) => replay = advanced,
                    Err(AuditError::Unavailable) => return Err(AuditError::Unavailable),
                    Err(error) => {
                        ::log::error!("audit log scrub failed, refusing further work: {error}");
                        health.fail();
                        return Err(error);
                    }
                }
            }
        })
    }
}

/// Closes the log for a shutdown: nothing more is appended, and every request still waiting
/// for its result gets an `aborted` result leaf, durably. Answers with their session ids.
#[derive(Message)]
#[rtype(result = "Result<Vec<[u8; 16]>, AuditError>")]
pub struct Close;

impl Handler<Close> for Auditor {
    type Result = ResponseFuture<Result<Vec<[u8; 16]>, AuditError>>;

    fn handle(&mut self, _: Close, _: &mut Self::Context) -> Self::Result {
        // Queued appends are refused from here on; a batch being written finishes first, since
        // the writer takes its messages in order.
        self.health.fail();
        let closed = self.writer.send(AbortPending);
        Box::pin(async move { closed.await.unwrap_or(Err(AuditError::Unavailable)) })
    }
}

#[derive(Message)]
#[rtype(result = "Result<Vec<[u8; 16]>, AuditError>")]
struct AbortPending;

impl Handler<AbortPending> for LogWriter {
    type Result = Result<Vec<[u8; 16]>, AuditError>;

    fn handle(&mut self, _: AbortPending, _: &mut Self::Context) -> Self::Result {
        let aborted = self.log()?.abort_pending();
        // Closed: whatever happens, nothing is appended after this.
        self.log = None;
        aborted
    }
}

/// A read-only question of §6, answered from the log on the log's own thread.
pub trait Question: Send + 'static {
    /// What the question is answered with.
    type Answer: Send + 'static;
    /// Answers from the log as it is now.
    fn answer(self, log: &AuditLog) -> Result<Self::Answer, AuditError>;
}

/// `GET /audit/{session_id}`: the session's leaves with proofs.
pub struct SessionEntries(pub [u8; 16]);

impl Question for SessionEntries {
    type Answer = Proven;
    fn answer(self, log: &AuditLog) -> Result<Proven, AuditError> {
        log.session(&self.0)
    }
}

/// `GET /sessions/{id}/result` for a session that is not running.
pub struct SessionResult(pub [u8; 16]);

impl Question for SessionResult {
    type Answer = StoredResult;
    fn answer(self, log: &AuditLog) -> Result<StoredResult, AuditError> {
        log.result(&self.0)
    }
}

/// One page of the background scrub: the replay so far goes in and comes back advanced, with
/// whether it reached the log's size.
pub struct ScrubPage(pub LogReplay);

impl Question for ScrubPage {
    type Answer = (LogReplay, bool);
    fn answer(self, log: &AuditLog) -> Result<(LogReplay, bool), AuditError> {
        let mut replay = self.0;
        let done = log.scrub_page(&mut replay)?;
        Ok((replay, done))
    }
}

/// `GET /audit/checkpoint`.
pub struct LatestCheckpoint;

impl Question for LatestCheckpoint {
    type Answer = String;
    fn answer(self, log: &AuditLog) -> Result<String, AuditError> {
        Ok(log.checkpoint().to_owned())
    }
}

/// `GET /audit/consistency`.
pub struct ConsistencyProof {
    /// The tree size the client already trusts.
    pub old: u64,
    /// The tree size to prove consistency with.
    pub new: u64,
}

impl Question for ConsistencyProof {
    type Answer = Vec<Digest>;
    fn answer(self, log: &AuditLog) -> Result<Vec<Digest>, AuditError> {
        log.consistency(self.old, self.new)
    }
}

/// `GET /audit/entries`.
pub struct LeafRange {
    /// The first index returned.
    pub start: u64,
    /// One past the last index asked for; the log clamps it.
    pub end: u64,
}

impl Question for LeafRange {
    type Answer = Vec<(u64, Vec<u8>)>;
    fn answer(self, log: &AuditLog) -> Result<Self::Answer, AuditError> {
        log.entries(self.start, self.end)
    }
}

/// Asks the log a [`Question`].
pub struct Ask<Q>(pub Q);

impl<Q: Question> Message for Ask<Q> {
    type Result = Result<Q::Answer, AuditError>;
}

impl<Q: Question> Handler<Ask<Q>> for Auditor {
    type Result = ResponseFuture<Result<Q::Answer, AuditError>>;

    fn handle(&mut self, ask: Ask<Q>, _: &mut Self::Context) -> Self::Result {
        let answer = self.writer.send(ask);
        Box::pin(async move { answer.await.unwrap_or(Err(AuditError::Unavailable)) })
    }
}

/// The thread that owns the log.
pub(crate) struct LogWriter {
    log: Option<AuditLog>,
}

impl LogWriter {
    fn log(&mut self) -> Result<&mut AuditLog, AuditError> {
        self.log.as_mut().ok_or(AuditError::Unavailable)
    }
}

impl Actor for LogWriter {
    type Context = SyncContext<Self>;
}

#[derive(Message)]
#[rtype(result = "Result<Vec<Appended>, AuditError>")]
struct WriteBatch(Vec<NewLeaf>);

impl Handler<WriteBatch> for LogWriter {
    type Result = Result<Vec<Appended>, AuditError>;

    fn handle(&mut self, WriteBatch(leaves): WriteBatch, _: &mut Self::Context) -> Self::Result {
        let written = self.log()?.append(leaves);
        if written.is_err() {
            // The store may hold a half-known state; no later write may build on it.
            self.log = None;
        }
        written
    }
}

impl<Q: Question> Handler<Ask<Q>> for LogWriter {
    type Result = Result<Q::Answer, AuditError>;

    fn handle(&mut self, Ask(question): Ask<Q>, _: &mut Self::Context) -> Self::Result {
        question.answer(self.log()?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use wasm_hypervisor_protocol::checkpoint;
    use wasm_hypervisor_protocol::identity::IdentityKey;
    use wasm_hypervisor_protocol::leaf::{Leaf, RequestLeaf};
    use wasm_hypervisor_protocol::merkle;

    use super::*;
    use crate::auditor::audit_log::ResultRetention;
    use crate::auditor::store::testing::FillingDisk;
    use crate::auditor::store::{self, StoreKind};

    fn leaf(n: u16) -> Leaf {
        let [a, b] = n.to_be_bytes();
        Leaf::Request(RequestLeaf {
            session_id: [a, b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            time_ms: u64::from(n),
            announcement_hash: [a; 32],
            request_commitment: [b; 32],
        })
    }

    #[actix_rt::test]
    async fn concurrent_appends_are_group_committed_and_each_is_proven() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Arc::new(IdentityKey::from_secret_bytes(&[0x41; 32]).unwrap());
        let store = store::open(StoreKind::Redb, dir.path()).unwrap();
        let (log, _) = AuditLog::open(
            store,
            Arc::clone(&identity),
            "test/log".into(),
            ResultRetention::default(),
        )
        .unwrap();
        let (auditor, health) = Auditor::start_with(log, Arc::default(), &Arbiter::current());
        let appends: Vec<_> = (0..64)
            .map(|n| auditor.send(Append(leaf(n).into())))
            .collect();
        let mut checkpoints = HashSet::new();
        let mut indices = HashSet::new();
        for append in appends {
            let appended = append.await.unwrap().unwrap();
            let signed =
                checkpoint::verify(&appended.checkpoint, "test/log", &identity.public()).unwrap();
            let entry = &appended.entry;
            merkle::verify_inclusion(
                &entry.leaf,
                entry.index,
                signed.size,
                &entry.inclusion_proof,
                &signed.root,
            )
            .unwrap();
            indices.insert(entry.index);
            checkpoints.insert(appended.checkpoint);
        }
        assert_eq!(indices, (0..64).collect());
        // Leaves that arrived while a batch was being written shared the next batch.
        assert!(
            checkpoints.len() < 64,
            "{} batches for 64 leaves",
            checkpoints.len()
        );
        assert!(health.is_writable());
        let latest = auditor.send(Ask(LatestCheckpoint)).await.unwrap().unwrap();
        assert_eq!(
            checkpoint::verify(&latest, "test/log", &identity.public())
                .unwrap()
                .size,
            64
        );
    }

    #[actix_rt::test]
    async fn a_failed_write_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Arc::new(IdentityKey::from_secret_bytes(&[0x41; 32]).unwrap());
        let store = Box::new(FillingDisk::over(
            store::open(StoreKind::Redb, dir.path()).unwrap(),
            1,
        ));
        let (log, _) = AuditLog::open(
            store,
            identity,
            "test/log".into(),
            ResultRetention::default(),
        )
        .unwrap();
        let (auditor, health) = Auditor::start_with(log, Arc::default(), &Arbiter::current());
        auditor.send(Append(leaf(1).into())).await.unwrap().unwrap();
        let failed = auditor.send(Append(leaf(2).into())).await.unwrap();
        assert!(matches!(failed, Err(AuditError::Store(_))), "{failed:?}");
        assert!(!health.is_writable());
        // Nothing is acknowledged any more, not even once the disk has room again.
        let refused = auditor.send(Append(leaf(3).into())).await.unwrap();
        assert!(
            matches!(refused, Err(AuditError::Unavailable)),
            "{refused:?}"
        );
    }
}
