//! A work queue on Amazon SQS, for `tdev submit` and `tdev worker`: small JSON jobs
//! delivered at least once. A received job is invisible to the other workers for its
//! visibility timeout, which its holder extends while it works; a holder that dies
//! leaves the job to reappear when the timeout runs out. A job received more often than
//! the queue's redrive policy allows goes to its dead-letter queue. Endpoint, region and
//! credentials come from the standard AWS environment, as for the `s3://` store.

use crate::error::{ErrorKind, Result};
use crate::store::s3::{aws_sdk_config, remote};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The body of a job may not be longer than this (SQS's limit is 256 KiB; jobs carry
/// keys of the store, not tasks or modules).
pub const MAX_JOB_BYTES: usize = 64 * 1024;

/// A queue, by its URL.
pub struct Queue {
    /// Shared by a queue and its dead-letter queue when [`Queue::create`] made both.
    rt: Arc<tokio::runtime::Runtime>,
    client: aws_sdk_sqs::Client,
    url: String,
}

/// A job as received: what it says, the handle to extend or delete it, and how many
/// times it has been received (1 the first time).
#[derive(Clone, Debug)]
pub struct Received {
    /// The job's body.
    pub body: String,
    /// The receipt handle of this delivery.
    pub receipt: String,
    /// The message's id (the same on every delivery).
    pub message_id: String,
    /// Deliveries so far, this one included.
    pub receive_count: u32,
}

/// How many jobs wait and how many are held by workers (approximate, as SQS counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Depth {
    /// Visible: waiting for a worker.
    pub waiting: u64,
    /// Received and not yet deleted or returned.
    pub in_flight: u64,
    /// Sent with a delay that has not run out.
    pub delayed: u64,
}

fn bad_url(url: &str, reason: &str) -> crate::Error {
    ErrorKind::StoreUri {
        uri: url.to_string(),
        reason: reason.to_string(),
    }
    .into()
}

impl Queue {
    /// The queue at `url` (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or the
    /// endpoint's form of it). Nothing is created or checked: see [`Queue::create`].
    pub fn open(url: &str) -> Result<Queue> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(bad_url(url, "a queue is named by its URL (https://…)"));
        }
        if url.len() > 1024 || url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad_url(url, "not a queue URL"));
        }
        let (rt, sdk) = aws_sdk_config(url)?;
        Ok(Queue {
            rt: Arc::new(rt),
            client: aws_sdk_sqs::Client::new(&sdk),
            url: url.to_string(),
        })
    }

    /// Creates (or finds) the queue `name` with a dead-letter queue `name-dead` that
    /// takes a job after `max_receives` deliveries, and returns both. The visibility
    /// timeout of both is `visibility`.
    pub fn create(name: &str, max_receives: u32, visibility: Duration) -> Result<(Queue, Queue)> {
        let (rt, sdk) = aws_sdk_config(name)?;
        let client = aws_sdk_sqs::Client::new(&sdk);
        let vis = visibility.as_secs().to_string();
        let dead_name = format!("{name}-dead");
        let dead_url = rt
            .block_on(
                client
                    .create_queue()
                    .queue_name(&dead_name)
                    .attributes(QueueAttributeName::VisibilityTimeout, &vis)
                    .send(),
            )
            .map_err(|e| remote(format!("create queue {dead_name}"), e))?
            .queue_url
            .ok_or_else(|| remote_shape(&dead_name, "no queue URL in the answer"))?;
        let dead_arn = rt
            .block_on(
                client
                    .get_queue_attributes()
                    .queue_url(&dead_url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send(),
            )
            .map_err(|e| remote(format!("attributes of {dead_name}"), e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| remote_shape(&dead_name, "no ARN"))?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dead_arn,
            "maxReceiveCount": max_receives.to_string(),
        })
        .to_string();
        let url = rt
            .block_on(
                client
                    .create_queue()
                    .queue_name(name)
                    .attributes(QueueAttributeName::VisibilityTimeout, &vis)
                    .attributes(QueueAttributeName::RedrivePolicy, redrive)
                    .send(),
            )
            .map_err(|e| remote(format!("create queue {name}"), e))?
            .queue_url
            .ok_or_else(|| remote_shape(name, "no queue URL in the answer"))?;
        let rt = Arc::new(rt);
        let dead = Queue {
            rt: rt.clone(),
            client: client.clone(),
            url: dead_url,
        };
        Ok((Queue { rt, client, url }, dead))
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Sends a job, visible after `delay` (at most 15 minutes, SQS's limit); returns
    /// its message id.
    pub fn send(&self, body: &str, delay: Duration) -> Result<String> {
        if body.len() > MAX_JOB_BYTES {
            return Err(remote_shape(
                &self.url,
                &format!("a job of {} bytes is over {MAX_JOB_BYTES}", body.len()),
            ));
        }
        let delay = delay.as_secs().min(900) as i32;
        let out = self
            .block(
                self.client
                    .send_message()
                    .queue_url(&self.url)
                    .message_body(body)
                    .delay_seconds(delay)
                    .send(),
            )
            .map_err(|e| remote(format!("send to {}", self.url), e))?;
        out.message_id
            .ok_or_else(|| remote_shape(&self.url, "no message id in the answer"))
    }

    /// Waits up to `wait` (at most 5 s, well under each call's 10 s timeout) for one
    /// job, and holds it for `visibility`.
    pub fn receive(&self, wait: Duration, visibility: Duration) -> Result<Option<Received>> {
        let out = self
            .block(
                self.client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(1)
                    .wait_time_seconds(wait.as_secs().min(5) as i32)
                    .visibility_timeout(visibility.as_secs().min(43_200) as i32)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send(),
            )
            .map_err(|e| remote(format!("receive from {}", self.url), e))?;
        let Some(m) = out.messages.and_then(|mut v| v.pop()) else {
            return Ok(None);
        };
        let count = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| remote_shape(&self.url, "a message without its receive count"))?;
        let missing = |what: &str| remote_shape(&self.url, &format!("a message without {what}"));
        Ok(Some(Received {
            body: m.body.ok_or_else(|| missing("a body"))?,
            receipt: m.receipt_handle.ok_or_else(|| missing("a receipt"))?,
            message_id: m.message_id.ok_or_else(|| missing("an id"))?,
            receive_count: count,
        }))
    }

    /// Holds a received job for `visibility` more from now.
    pub fn extend(&self, receipt: &str, visibility: Duration) -> Result<()> {
        self.block(
            self.client
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .visibility_timeout(visibility.as_secs().min(43_200) as i32)
                .send(),
        )
        .map_err(|e| remote(format!("extend a job of {}", self.url), e))?;
        Ok(())
    }

    /// Removes a job that is done.
    pub fn delete(&self, receipt: &str) -> Result<()> {
        self.block(
            self.client
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .send(),
        )
        .map_err(|e| remote(format!("delete a job of {}", self.url), e))?;
        Ok(())
    }

    /// How many jobs wait, are held and are delayed.
    pub fn depth(&self) -> Result<Depth> {
        use QueueAttributeName as A;
        let attrs: HashMap<A, String> = self
            .block(
                self.client
                    .get_queue_attributes()
                    .queue_url(&self.url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .attribute_names(A::ApproximateNumberOfMessagesDelayed)
                    .send(),
            )
            .map_err(|e| remote(format!("attributes of {}", self.url), e))?
            .attributes
            .unwrap_or_default();
        let n = |k: A| -> Result<u64> {
            attrs
                .get(&k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| remote_shape(&self.url, &format!("no {k:?}")))
        };
        Ok(Depth {
            waiting: n(A::ApproximateNumberOfMessages)?,
            in_flight: n(A::ApproximateNumberOfMessagesNotVisible)?,
            delayed: n(A::ApproximateNumberOfMessagesDelayed)?,
        })
    }
}

fn remote_shape(what: &str, reason: &str) -> crate::Error {
    ErrorKind::RemoteShape {
        what: what.to_string(),
        reason: reason.to_string(),
    }
    .into()
}
