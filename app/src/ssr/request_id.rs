//! A request id for every HTTP request: sent back as `x-request-id`, attached to the request's
//! tracing span, and quoted in opaque internal-error messages so that an operator can find the
//! log line a user reports.

use axum::{extract::Request, middleware::Next, response::Response};
use http::HeaderValue;
use tracing::Instrument;

/// What the audit log notes of the request being served: its id, the client's user agent,
/// and the administrator impersonating the session's user (set by the guard).
#[derive(Debug, Default)]
pub struct RequestContext {
    pub id: String,
    pub user_agent: Option<HeaderValue>,
    impersonator: std::sync::Mutex<Option<String>>,
}

tokio::task_local! {
    static REQUEST: std::sync::Arc<RequestContext>;
}

pub const HEADER: &str = "x-request-id";

/// The id of the request being served, or a fresh one outside a request (background work).
pub fn current() -> String {
    REQUEST
        .try_with(|r| r.id.clone())
        .ok()
        .or_else(|| context().map(|r| r.id.clone()))
        .unwrap_or_else(fresh)
}

/// The request being served (`None` in background work): the task's, or, in the tasks in
/// which the server renders a page (and runs that page's server functions), the one the
/// renderer was given ([`provide`]).
pub fn context() -> Option<std::sync::Arc<RequestContext>> {
    REQUEST
        .try_with(std::sync::Arc::clone)
        .ok()
        .or_else(leptos::prelude::use_context::<std::sync::Arc<RequestContext>>)
}

/// Spawns `task` on tokio carrying the request being served (its id, for errors and logs) and
/// the current tracing span: work a request hands to a task of its own still speaks for it.
pub fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    let task = task.instrument(tracing::Span::current());
    match context() {
        Some(request) => tokio::spawn(REQUEST.scope(request, task)),
        None => tokio::spawn(task),
    }
}

/// Installs leptos' task spawner (once per process, before leptos_axum would install plain
/// tokio): a task spawned while a request is served (a page's resources, the server
/// functions they call) carries that request, however long it outlives the render.
pub fn init_executor() {
    use std::sync::Arc;
    struct RequestScoped;
    impl any_spawner::CustomExecutor for RequestScoped {
        fn spawn(&self, task: any_spawner::PinnedFuture<()>) {
            match REQUEST.try_with(Arc::clone) {
                Ok(request) => drop(tokio::spawn(REQUEST.scope(request, task))),
                Err(_) => drop(tokio::spawn(task)),
            }
        }
        fn spawn_local(&self, task: any_spawner::PinnedLocalFuture<()>) {
            match REQUEST.try_with(Arc::clone) {
                Ok(request) => drop(tokio::task::spawn_local(REQUEST.scope(request, task))),
                Err(_) => drop(tokio::task::spawn_local(task)),
            }
        }
        fn poll_local(&self) {}
    }
    static OURS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    use std::sync::atomic::Ordering;
    match any_spawner::Executor::init_custom_executor(RequestScoped) {
        Ok(()) => OURS.store(true, Ordering::Release),
        // Already installed by an earlier app in this process (the tests build many): fine.
        Err(_) if OURS.load(Ordering::Acquire) => {}
        // Someone else's spawner won (leptos' plain tokio one, installed first): tasks run,
        // but calls made while rendering a page lose their request id and user agent.
        Err(_) => tracing::error!(
            "leptos' task spawner was installed before Keyward's: events recorded while rendering pages will lack their request"
        ),
    }
}

/// Hands the request being served to the page renderer (leptos_axum's additional context),
/// for tasks spawned where the request's task-local is not set (the response body, polled
/// after the handler returned).
pub fn provide() {
    if let Ok(request) = REQUEST.try_with(std::sync::Arc::clone) {
        leptos::prelude::provide_context(request);
    }
}

/// Notes that an administrator is acting as the session's user for this request.
pub fn set_impersonator(admin: &str) {
    if let Some(r) = context() {
        if let Ok(mut slot) = r.impersonator.lock() {
            *slot = Some(admin.to_string());
        }
    }
}

impl RequestContext {
    /// The administrator acting as the session's user, if any.
    pub fn impersonator(&self) -> Option<String> {
        self.impersonator.lock().ok().and_then(|s| s.clone())
    }
}

fn fresh() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// Middleware: assigns the id, scopes it for [`current`], and opens the request's span.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = fresh();
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(HEADER, value);
    }
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let context = std::sync::Arc::new(RequestContext {
        id: id.clone(),
        user_agent: request.headers().get(http::header::USER_AGENT).cloned(),
        impersonator: Default::default(),
    });
    let mut response = REQUEST
        .scope(context, next.run(request).instrument(span.clone()))
        .await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "response"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
