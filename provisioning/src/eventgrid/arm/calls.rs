//! The typed resource calls of [`ArmClient`]: GET, paged LIST, PUT and PATCH (waiting for their
//! long-running operation, with or without reading the resource back) and DELETE.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::ArmClient;
use super::config::{LIST_PAGE_SIZE, bump};
use super::lro::Finished;
use super::reply::malformed;
use super::transport::Purpose;
use crate::{Error, Result};

impl ArmClient {
    /// Reads one resource; `None` when ARM answers 404.
    ///
    /// # Errors
    /// [`Error::Arm`] for any other error status, [`Error::Transport`], [`Error::Credential`],
    /// [`Error::Cancelled`].
    pub async fn get(&self, resource_id: &str, api_version: &str) -> Result<Option<Value>> {
        let url = self.resource_url(resource_id, api_version)?;
        let reply = self
            .send(&Method::GET, url, resource_id, None, Purpose::Call)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.success(&Method::GET, resource_id).map(Some)
    }

    /// Reads every item of a collection (e.g. `…/namespaces/ns/clients`), following `nextLink`
    /// until a page has none.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Error::Arm`] with status 404 when the parent is missing.
    pub async fn list(&self, collection_id: &str, api_version: &str) -> Result<Vec<Value>> {
        // The largest page ARM serves (`$top` 1..100, default 20): fewer round trips.
        let top = LIST_PAGE_SIZE.to_string();
        self.list_with_query(collection_id, api_version, &[("$top", &top)])
            .await
    }

    /// [`list`](Self::list) with other query parameters than `$top` (e.g. role assignments'
    /// `$filter=atScope()`, which have no `$top`).
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub async fn list_with_query(
        &self,
        collection_id: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>> {
        let mut url = self.resource_url(collection_id, api_version)?;
        url.query_pairs_mut().extend_pairs(query);
        let mut purpose = Purpose::Call;
        let mut items = Vec::new();
        loop {
            let reply = self
                .send(&Method::GET, url.clone(), collection_id, None, purpose)
                .await?;
            let mut page = reply.success(&Method::GET, collection_id)?;
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => items.extend(values),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(malformed(
                        &Method::GET,
                        collection_id,
                        "`value` is not an array",
                    ));
                }
            }
            let Some(link) = page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|link| !link.is_empty())
            else {
                return Ok(items);
            };
            let next = self.link(link, &Method::GET, collection_id)?;
            if next == url {
                return Err(malformed(
                    &Method::GET,
                    collection_id,
                    "`nextLink` repeats the page",
                ));
            }
            url = next;
            purpose = Purpose::Page;
        }
    }

    /// Creates or replaces a resource with `body`, waits for its long-running operation and
    /// returns the resource as ARM then reports it.
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Error::Operation`] when the operation ends `Failed` or
    /// `Canceled`; [`Error::OperationTimeout`] after
    /// [`ArmConfig::operation_timeout`](super::ArmConfig::operation_timeout).
    pub async fn put(&self, resource_id: &str, api_version: &str, body: &Value) -> Result<Value> {
        let finished = self
            .write(Method::PUT, resource_id, api_version, body)
            .await?;
        self.read_back(resource_id, api_version, finished).await
    }

    /// Like [`put`](Self::put), without reading the resource back afterwards: one ARM call
    /// fewer per write, for callers that do not need the result.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn put_and_wait(
        &self,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<()> {
        self.write(Method::PUT, resource_id, api_version, body)
            .await
            .map(drop)
    }

    /// Updates a resource with a partial `body` (namespaces only), waits like [`put`](Self::put)
    /// and returns the updated resource.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn patch(&self, resource_id: &str, api_version: &str, body: &Value) -> Result<Value> {
        let finished = self
            .write(Method::PATCH, resource_id, api_version, body)
            .await?;
        self.read_back(resource_id, api_version, finished).await
    }

    /// Like [`patch`](Self::patch), without reading the resource back afterwards.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn patch_and_wait(
        &self,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<()> {
        self.write(Method::PATCH, resource_id, api_version, body)
            .await
            .map(drop)
    }

    /// Deletes a resource and waits until it is gone; a resource that does not exist (404, 204)
    /// is not an error.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn delete(&self, resource_id: &str, api_version: &str) -> Result<()> {
        let method = Method::DELETE;
        let url = self.resource_url(resource_id, api_version)?;
        bump(&self.counters.writes);
        let reply = self
            .send(&method, url, resource_id, None, Purpose::Call)
            .await?;
        if matches!(reply.status, StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
            return Ok(());
        }
        reply.success(&method, resource_id)?;
        self.wait(&method, resource_id, api_version, &reply, None)
            .await
            .map(drop)
    }

    /// Sends a PUT or PATCH and waits for its long-running operation.
    async fn write(
        &self,
        method: Method,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Finished> {
        let url = self.resource_url(resource_id, api_version)?;
        bump(&self.counters.writes);
        let reply = self
            .send(&method, url, resource_id, Some(body), Purpose::Call)
            .await?;
        let answer = reply.success(&method, resource_id)?;
        self.wait(&method, resource_id, api_version, &reply, Some(answer))
            .await
    }

    /// The resource after a finished write: the write's own answer, or a GET when the
    /// operation was polled (ARM's final state is then the resource's).
    async fn read_back(
        &self,
        resource_id: &str,
        api_version: &str,
        finished: Finished,
    ) -> Result<Value> {
        match finished {
            Finished::Resource(resource) => Ok(resource),
            Finished::Polled => {
                self.get(resource_id, api_version)
                    .await?
                    .ok_or_else(|| Error::Arm {
                        method: Method::GET.to_string(),
                        resource: resource_id.to_owned(),
                        status: StatusCode::NOT_FOUND.as_u16(),
                        code: None,
                        message: "the resource is missing after its operation succeeded".into(),
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ArmConfig;
    use super::super::tests::client;

    #[test]
    fn calls_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let arm = client(ArmConfig::default());
        let body = json!({});
        assert_send(&arm.get("/r", "v"));
        assert_send(&arm.list("/r", "v"));
        assert_send(&arm.put("/r", "v", &body));
        assert_send(&arm.patch("/r", "v", &body));
        assert_send(&arm.delete("/r", "v"));
        assert_eq!(
            arm.stats().to_string(),
            "0 ARM requests (0 writes, 0 polls, 0 retries, 0 throttled)"
        );
    }
}
