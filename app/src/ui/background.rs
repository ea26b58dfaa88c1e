//! What the page asks for by itself (the bell's poll, a refetch the live usage feed asked for)
//! says so with the [`HEADER`], so that an unattended tab does not keep its session alive
//! (`access::guard::Activity`). The header can only stop a request from pushing the session's
//! idle deadline back, never make one do it, so the server may take it as sent.

use leptos::server_fn::client::browser::BrowserClient;
use leptos::server_fn::client::Client;
use leptos::server_fn::error::FromServerFnError;
use leptos::server_fn::request::browser::BrowserRequest;
use leptos::server_fn::response::browser::BrowserResponse;
use leptos::server_fn::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request header of a background call (`1`).
pub const HEADER: &str = "x-keyward-background";

#[cfg(feature = "hydrate")]
thread_local! {
    /// Set while a [`background`] future is polled (the browser runs one thread).
    static IN_BACKGROUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The client of the server functions the page may call by itself: the browser's `fetch`,
/// with the [`HEADER`] when the call is made inside [`background`].
pub struct PageClient;

impl<E, IS, OS> Client<E, IS, OS> for PageClient
where
    E: FromServerFnError,
    IS: FromServerFnError,
    OS: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(req: BrowserRequest) -> impl Future<Output = Result<BrowserResponse, E>> + Send {
        #[cfg(feature = "hydrate")]
        if IN_BACKGROUND.with(std::cell::Cell::get) {
            req.headers().set(HEADER, "1");
        }
        <BrowserClient as Client<E, IS, OS>>::send(req)
    }

    #[allow(clippy::type_complexity)]
    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl futures::Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                impl futures::Sink<Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, IS, OS>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, IS, OS>>::spawn(future)
    }
}

/// `fetch` as the page's own doing when `page` is true: a server function (declared with
/// `client = PageClient`) called while it runs sends the [`HEADER`]. On the server, `fetch`
/// as it is.
pub fn background<F: Future>(page: bool, fetch: F) -> Background<F> {
    Background {
        page,
        fetch: Box::pin(fetch),
    }
}

/// See [`background`].
pub struct Background<F> {
    // Read in the browser only (on the server there is no header to send).
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    page: bool,
    fetch: Pin<Box<F>>,
}

impl<F: Future> Future for Background<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        #[cfg(feature = "hydrate")]
        let outer = IN_BACKGROUND.with(|b| b.replace(self.page));
        let polled = self.fetch.as_mut().poll(cx);
        #[cfg(feature = "hydrate")]
        IN_BACKGROUND.with(|b| b.set(outer));
        // The request went out on the first poll; whatever later polls run (a redirect hook
        // navigating, say) is not this call's.
        self.page = false;
        polled
    }
}

/// Whether a fetch with the filters `now` is the live feed's: true when the filters are those
/// of the previous fetch of the same resource (`last`), so only the feed's counter changed;
/// false for the first fetch and when the user changed a filter. On a page loaded in full, the
/// first fetch is the one hydration runs: its request is not sent (the data came with the page)
/// but it sets `last`, so the feed's first refetch is the page's own too.
pub fn only_the_feed_changed<K: PartialEq + Send + Sync + 'static>(
    last: leptos::prelude::StoredValue<Option<K>>,
    now: K,
) -> bool {
    use leptos::prelude::UpdateValue;
    last.try_update_value(|last| {
        let same = last.as_ref() == Some(&now);
        *last = Some(now);
        same
    })
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::only_the_feed_changed;
    use leptos::prelude::StoredValue;

    #[test]
    fn only_a_refetch_with_unchanged_filters_is_the_page_s_own() {
        leptos::prelude::Owner::new().with(|| {
            let last = StoredValue::new(None);
            assert!(!only_the_feed_changed(last, "1h"), "the first fetch");
            assert!(only_the_feed_changed(last, "1h"), "the feed's refetch");
            assert!(
                !only_the_feed_changed(last, "24h"),
                "a filter the user changed"
            );
            assert!(only_the_feed_changed(last, "24h"));
        });
    }
}
