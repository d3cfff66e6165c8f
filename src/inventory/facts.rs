//! Host facts over SSH: the Linux bridges that exist on each host (so CREATE_BRIDGES is planned
//! only where one is missing) and the Exadata image version (`imageinfo -ver`, which replaces
//! es.xml's when present). Gathered only when the configuration asks (`ssh { gather_facts }`).

use std::collections::BTreeSet;

use tokio::sync::Semaphore;

use crate::remote::{RemoteError, RemoteHost, SshTarget};

use super::model::Topology;
use super::reconcile::apply_facts;
use super::version::ImageVersion;

/// What SSH told about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub host: String,
    pub bridges: BTreeSet<String>,
    pub image_version: Option<ImageVersion>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("host {host}: cannot gather facts over SSH: {source}")]
    Remote {
        host: String,
        #[source]
        source: RemoteError,
    },
    #[error("host {host}: `imageinfo -ver` printed `{text}`, which is not an image version")]
    BadVersion { host: String, text: String },
    #[error("cannot start the SSH worker: {0}")]
    Runtime(std::io::Error),
    #[error("host {0} is not in es.xml")]
    UnknownHost(String),
}

/// Gathers facts from every `(host, target)` pair, at most `parallelism` at a time, in input
/// order. Runs on a private runtime in its own thread, so it may be called from anywhere,
/// including from inside another tokio runtime.
pub fn gather(
    targets: &[(String, SshTarget)],
    parallelism: usize,
) -> Vec<Result<HostFacts, FactsError>> {
    let targets = targets.to_vec();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FactsError::Runtime)?;
        Ok(runtime.block_on(gather_all(targets, parallelism.max(1))))
    });
    match worker.join() {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => vec![Err(e)],
        Err(_) => vec![Err(FactsError::Runtime(std::io::Error::other(
            "the SSH worker thread panicked",
        )))],
    }
}

async fn gather_all(
    targets: Vec<(String, SshTarget)>,
    parallelism: usize,
) -> Vec<Result<HostFacts, FactsError>> {
    let permits = std::sync::Arc::new(Semaphore::new(parallelism));
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|(host, target)| {
            let permits = permits.clone();
            tokio::spawn(async move {
                // The semaphore is never closed, so acquire only waits.
                let _permit = permits.acquire_owned().await.ok();
                facts_of(host, &target).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results
            .push(task.await.unwrap_or_else(|e| {
                Err(FactsError::Runtime(std::io::Error::other(e.to_string())))
            }));
    }
    results
}

async fn facts_of(host: String, target: &SshTarget) -> Result<HostFacts, FactsError> {
    let remote = |source| FactsError::Remote {
        host: host.clone(),
        source,
    };
    let session = RemoteHost::connect(target).await.map_err(remote)?;
    // Two sessions over the one connection at once: each command costs a round trip.
    let (bridges, version_text) = tokio::join!(session.bridges(), session.image_version());
    let (bridges, version_text) = (bridges.map_err(remote)?, version_text.map_err(remote)?);
    // Closing is best effort: the facts are already in hand.
    let _ = session.close().await;
    let image_version = match version_text {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| FactsError::BadVersion {
            host: host.clone(),
            text,
        })?),
    };
    Ok(HostFacts {
        host,
        bridges,
        image_version,
    })
}

/// Records gathered facts in the topology. The first failure is returned: planning on partial
/// facts could plan a bridge as present where it is not.
pub fn record(
    topology: &mut Topology,
    facts: Vec<Result<HostFacts, FactsError>>,
) -> Result<(), FactsError> {
    for f in facts {
        let f = f?;
        apply_facts(topology, &f.host, f.bridges, f.image_version)
            .map_err(|e| FactsError::UnknownHost(e.0))?;
    }
    Ok(())
}
