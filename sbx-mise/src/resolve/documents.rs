//! Upstream documents parsed once per run and shared.
//!
//! Several steps of one lock read the same document: an npm closure is walked while the
//! tool's version resolves and again when it is locked, a PyPI project is read to pick the
//! version and again in each resolution round. The HTTP client keeps each URL's bytes; a
//! [`Documents`] keeps what they parsed into, so each document is parsed once (ruff's project
//! document alone takes ~13 ms to read).
//!
//! Documents are parsed on blocking threads: every tool of a lock is driven by one task, and
//! when a wave of packuments arrives together, parsing them there delayed the next request of
//! the longest dependency chain by ~8 ms (measured on eslint's closure).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::Fetch;

/// One parsed document, of whatever type its reader parsed it into.
type Shared = Arc<dyn Any + Send + Sync>;

/// Parsed documents by URL, for the lifetime of one HTTP client (one run).
#[derive(Default)]
pub struct Documents {
    cells: Mutex<HashMap<String, Arc<OnceCell<Shared>>>>,
}

impl Documents {
    fn cell(&self, url: &str) -> Arc<OnceCell<Shared>> {
        let mut cells = match self.cells.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        cells.entry(url.to_string()).or_default().clone()
    }
}

/// `body` (fetched from `url`) parsed by `parse`, shared with every other caller of this run
/// that parses the same URL into the same type (see [`Fetch::documents`]). A failed parse is
/// not kept: the next caller parses again and gets the same error.
pub async fn parsed<T, E, P>(fetch: &dyn Fetch, url: &str, body: Bytes, parse: P) -> Result<Arc<T>, E>
where
    T: Send + Sync + 'static,
    E: Send + 'static,
    P: FnOnce(&[u8]) -> Result<T, E> + Clone + Send + 'static,
{
    let Some(documents) = fetch.documents() else {
        return parse_off_task(body, parse).await.map(Arc::new);
    };
    let cell = documents.cell(url);
    let shared = cell
        .get_or_try_init(|| {
            let (body, parse) = (body.clone(), parse.clone());
            async move { parse_off_task(body, parse).await.map(|doc| Arc::new(doc) as Shared) }
        })
        .await?;
    match shared.clone().downcast::<T>() {
        Ok(doc) => Ok(doc),
        // The same URL read as another type elsewhere: parsed for this caller only.
        Err(_) => parse_off_task(body, parse).await.map(Arc::new),
    }
}

async fn parse_off_task<T, E>(body: Bytes, parse: impl FnOnce(&[u8]) -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return parse(&body);
    }
    match tokio::task::spawn_blocking(move || parse(&body)).await {
        Ok(result) => result,
        // A panic of the parser is the caller's panic; cancellation only happens when the
        // runtime shuts down, which drops the caller too.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => std::panic::resume_unwind(Box::new(format!("parsing was cancelled: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::resolve::FetchError;

    /// A fetcher without a network that shares documents, or not.
    #[derive(Default)]
    struct Fake(Option<Documents>);

    #[async_trait]
    impl Fetch for Fake {
        async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
            Err(FetchError::Offline { url: url.to_string() })
        }
        async fn sha256_of(&self, url: &str) -> Result<(String, u64), FetchError> {
            Err(FetchError::Offline { url: url.to_string() })
        }
        fn documents(&self) -> Option<&Documents> {
            self.0.as_ref()
        }
    }

    fn sharing() -> Fake {
        Fake(Some(Documents::default()))
    }

    fn counting(calls: &Arc<AtomicUsize>) -> impl FnOnce(&[u8]) -> Result<usize, String> + Clone + Send + 'static {
        let calls = calls.clone();
        move |body| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::str::from_utf8(body).map_err(|e| e.to_string())?.trim().parse::<usize>().map_err(|e| e.to_string())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_is_parsed_once_for_all_its_readers() {
        let fetch = sharing();
        let calls = Arc::new(AtomicUsize::new(0));
        let large = Bytes::from(format!("{}42", " ".repeat(1 << 20)));
        let readers = (0..8).map(|_| parsed(&fetch, "https://up/large", large.clone(), counting(&calls)));
        for value in futures::future::join_all(readers).await {
            assert_eq!(*value.unwrap(), 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let small = parsed(&fetch, "https://up/small", Bytes::from_static(b"7"), counting(&calls)).await.unwrap();
        let again = parsed(&fetch, "https://up/small", Bytes::from_static(b"7"), counting(&calls)).await.unwrap();
        assert_eq!((*small, *again, calls.load(Ordering::SeqCst)), (7, 7, 2));
        assert!(Arc::ptr_eq(&small, &again));
    }

    #[tokio::test]
    async fn a_failed_parse_is_not_kept_and_another_type_parses_for_itself() {
        let fetch = sharing();
        let calls = Arc::new(AtomicUsize::new(0));
        let url = "https://up/doc";
        let bad = parsed(&fetch, url, Bytes::from_static(b"not a number"), counting(&calls)).await;
        assert!(bad.unwrap_err().contains("invalid digit"));
        assert_eq!(*parsed(&fetch, url, Bytes::from_static(b"5"), counting(&calls)).await.unwrap(), 5);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let text = parsed(&fetch, url, Bytes::from_static(b"5"), |b: &[u8]| Ok::<_, String>(b.to_vec())).await.unwrap();
        assert_eq!(*text, b"5".to_vec());
    }

    #[tokio::test]
    async fn without_a_shared_store_every_call_parses() {
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            parsed(&Fake(None), "https://up/doc", Bytes::from_static(b"1"), counting(&calls)).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
