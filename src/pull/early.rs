//! The Defender client, with requests asked for before `pull` gets to them.
//!
//! Endpoints are pulled one after the other, but the first request of each
//! depends only on its state, so the later endpoints' first pages are asked
//! for as soon as the API has answered one request: they arrive while the
//! first endpoint is taken in and written, instead of each adding a round
//! trip (and the API's time to prepare a page) at the end. Not before: when
//! the first request fails (sign-in, proxy, TLS, the API down), no other is
//! sent alongside it. It costs no call: [`pull_endpoint`](super::pull_endpoint)
//! asks for exactly these requests and gets the early answers. What is not
//! used (a pull that failed or ran out of time first) is dropped.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use super::PageSource;
use crate::api::sift::Known;
use crate::api::{ApiError, DefenderClient, Fetched, Opened, PageRequest, Receive, StreamWhen};

type Asked = (PageRequest, JoinHandle<Result<Fetched, ApiError>>);

/// A [`PageSource`] that sends some requests before they are asked for.
pub struct Early {
    client: Arc<DefenderClient>,
    /// To ask for after the first answer.
    later: Mutex<Vec<PageRequest>>,
    asked: Mutex<Vec<Asked>>,
}

impl Early {
    /// `client`, which will send `later` once it has had an answer.
    pub fn new(client: Arc<DefenderClient>, later: Vec<PageRequest>) -> Early {
        Early {
            client,
            later: Mutex::new(later),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// Send the requests kept for later, once.
    fn ask_later(&self) {
        let later = std::mem::take(&mut *self.later.lock().unwrap());
        let mut asked = self.asked.lock().unwrap();
        for req in later {
            let client = Arc::clone(&self.client);
            let job = {
                let req = req.clone();
                tokio::spawn(async move { client.fetch_as(&req, Receive::Whole).await })
            };
            asked.push((req, job));
        }
    }

    /// The early answer to `req`, if it was asked for, or `how` the client
    /// fetches it; the first answer sends the requests kept for later.
    async fn fetch_as(&self, req: &PageRequest, how: Receive<'_>) -> Result<Fetched, ApiError> {
        let early = {
            let mut asked = self.asked.lock().unwrap();
            let i = asked.iter().position(|(r, _)| r == req);
            i.map(|i| asked.swap_remove(i).1)
        };
        let answer = match early {
            Some(job) => match job.await {
                Ok(answer) => return answer,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => self.client.fetch_as(req, how).await,
            },
            None => self.client.fetch_as(req, how).await,
        };
        if answer.is_ok() {
            self.ask_later();
        }
        answer
    }
}

impl PageSource for Early {
    async fn open<'k>(
        &self,
        req: &PageRequest,
        known: &'k Known,
        when: StreamWhen,
    ) -> Result<Opened<'k>, ApiError> {
        if self.asked.lock().unwrap().iter().any(|(r, _)| r == req) {
            return self
                .fetch_as(req, Receive::Sifting(known))
                .await
                .map(Opened::Whole);
        }
        let opened = self.client.open(req, known, when).await;
        if opened.is_ok() {
            self.ask_later();
        }
        opened
    }

    async fn fetch(&self, req: &PageRequest) -> Result<Fetched, ApiError> {
        self.fetch_as(req, Receive::Whole).await
    }

    async fn fetch_sifting(&self, req: &PageRequest, known: &Known) -> Result<Fetched, ApiError> {
        self.fetch_as(req, Receive::Sifting(known)).await
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        let asked = self.asked.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (_, job) in asked.drain(..) {
            job.abort();
        }
    }
}
