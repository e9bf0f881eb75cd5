//! `/v1/installations/{name}/callers`: each caller's secret for a per-caller installation.
//! `PUT` sets one (`{"issuer"?, "subject", "secret"}`), `DELETE` removes one named by query
//! parameters (`?issuer=...&subject=...`, percent-encoded: an issuer is a URL, so it is no
//! path segment), `GET` lists who has one. No answer ever holds a secret.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::routes::RouteId;
use super::{Api, ApiError, Reply, body, json_response};
use crate::callers::{CallerId, CallerSecretInput};
use crate::model::Invalid;

/// The caller named by the query string; unknown parameters are refused by name.
fn caller_query(req: &Request<Incoming>) -> Result<CallerId, ApiError> {
    let mut id = CallerId {
        issuer: String::new(),
        subject: String::new(),
    };
    let query = req.uri().query().unwrap_or("");
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "issuer" => id.issuer = v.into_owned(),
            "subject" => id.subject = v.into_owned(),
            other => {
                return Err(ApiError::invalid(&Invalid::new(
                    format!("callers.{other}"),
                    "unknown query parameter (issuer and subject name the caller)",
                )));
            }
        }
    }
    Ok(id)
}

fn answer(installation: &str, id: &CallerId, version: u64) -> Value {
    json!({
        "installation": installation,
        "issuer": id.issuer,
        "subject": id.subject,
        "version": version,
    })
}

impl Api {
    /// Answers the three caller routes for installation `name`.
    pub(super) async fn callers(
        &self,
        route: RouteId,
        req: Request<Incoming>,
        actor: String,
        name: String,
    ) -> Reply {
        match route {
            RouteId::SetCaller => {
                let input: CallerSecretInput = body(req, "callers").await?;
                let id = input.id();
                let n = name.clone();
                let version = self.write(move |s| s.put_caller(&actor, &n, input)).await?;
                Ok(json_response(StatusCode::OK, &answer(&name, &id, version)))
            }
            RouteId::UnsetCaller => {
                let id = caller_query(&req)?;
                let (n, i) = (name.clone(), id.clone());
                let version = self.write(move |s| s.delete_caller(&actor, &n, &i)).await?;
                let mut out = answer(&name, &id, version);
                out["deleted"] = json!(true);
                Ok(json_response(StatusCode::OK, &out))
            }
            _ => {
                let store = self.store.clone();
                let n = name.clone();
                let list = tokio::task::spawn_blocking(move || store.callers(&n))
                    .await
                    .map_err(super::internal)??;
                Ok(json_response(
                    StatusCode::OK,
                    &crate::callers::view(&name, &list),
                ))
            }
        }
    }
}
