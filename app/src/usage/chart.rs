//! Drawing the usage charts in the browser with charming's `WasmRenderer` over ECharts (our
//! own copy, `ECHARTS_SRC`, loaded on the first chart page only), and the live feed that tells
//! an open chart to refetch. Browser only (`hydrate`).
//!
//! charming's `update` merges the new option into the old one, which would leave a series
//! drawn after it disappeared; a redraw here replaces the whole option instead
//! (`setOption(option, true)`, ECharts' `notMerge`).

use super::{ErrorReport, RequestSeries};
use charming::component::{Axis, Legend};
use charming::element::{AxisType, Tooltip, Trigger};
use charming::series::{Bar, Line};
use charming::{Chart, WasmRenderer};
use std::cell::RefCell;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// ECharts 5.5.1 (`echarts.common`: line, bar, grid, tooltip, legend, title), from npm,
/// pinned in `vendor/package-lock.json`, served by Keyward itself.
pub const ECHARTS_SRC: &str = "/vendor/echarts-5.5.1.common.min.js";

thread_local! {
    /// The element a chart was drawn in, and its ECharts instance.
    static DRAWN: RefCell<Option<(web_sys::Element, JsValue)>> = const { RefCell::new(None) };
}

fn js_error(e: impl std::fmt::Debug) -> JsValue {
    JsValue::from_str(&format!("{e:?}"))
}

/// Loads ECharts once (a `<script>` in the head) and waits until its global exists.
pub async fn ensure_echarts() -> Result<(), JsValue> {
    let window = web_sys::window().ok_or_else(|| js_error("no window"))?;
    if js_sys::Reflect::has(&window, &JsValue::from_str("echarts"))? {
        return Ok(());
    }
    let document = window.document().ok_or_else(|| js_error("no document"))?;
    let script = match document.get_element_by_id("echarts-script") {
        Some(script) => script,
        None => {
            let script = document.create_element("script")?;
            script.set_id("echarts-script");
            script.set_attribute("src", ECHARTS_SRC)?;
            document
                .head()
                .ok_or_else(|| js_error("no head"))?
                .append_child(&script)?;
            script
        }
    };
    let loaded = js_sys::Promise::new(&mut |resolve, reject| {
        let on_load = Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let on_error = Closure::once_into_js(move || {
            let _ = reject.call1(&JsValue::NULL, &JsValue::from_str("ECharts did not load"));
        });
        let _ = script.add_event_listener_with_callback("load", on_load.unchecked_ref());
        let _ = script.add_event_listener_with_callback("error", on_error.unchecked_ref());
    });
    // Loaded between the check and the listener: nothing would fire, so look again first.
    if js_sys::Reflect::has(&window, &JsValue::from_str("echarts"))? {
        return Ok(());
    }
    wasm_bindgen_futures::JsFuture::from(loaded).await?;
    Ok(())
}

/// `HH:MM` (short ranges) or `DD/MM HH:MM` (days) in the viewer's time zone (`zone`: their
/// preference; `None`: the browser's).
fn label(ms: i64, with_day: bool, zone: Option<&str>) -> String {
    let (day, month, hour, minute) = match crate::ui::time::browser::parts(ms as f64, zone) {
        Some(p) => (p.day, p.month, p.hour, p.minute),
        None => {
            let d = js_sys::Date::new(&JsValue::from_f64(ms as f64));
            (
                d.get_date(),
                d.get_month() + 1,
                d.get_hours(),
                d.get_minutes(),
            )
        }
    };
    let time = format!("{hour:02}:{minute:02}");
    if with_day {
        format!("{day:02}/{month:02} {time}")
    } else {
        time
    }
}

/// A chart over the buckets of `s`: tooltip, legend, and the time axis in the viewer's zone.
fn over_time(s: &RequestSeries, zone: Option<&str>) -> Chart {
    let with_day = s.bucket_ms >= 3_600_000;
    let labels: Vec<String> = s.starts.iter().map(|t| label(*t, with_day, zone)).collect();
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new())
        .x_axis(Axis::new().type_(AxisType::Category).data(labels))
}

/// The chart of a series: stacked bars by status class.
pub fn chart_of(s: &RequestSeries, zone: Option<&str>) -> Chart {
    over_time(s, zone)
        .y_axis(Axis::new().type_(AxisType::Value).min_interval(1))
        .series(Bar::new().name("2xx").stack("requests").data(s.ok.clone()))
        .series(
            Bar::new()
                .name("4xx")
                .stack("requests")
                .data(s.client_errors.clone()),
        )
        .series(
            Bar::new()
                .name("429")
                .stack("requests")
                .data(s.rate_limited.clone()),
        )
        .series(
            Bar::new()
                .name("5xx")
                .stack("requests")
                .data(s.server_errors.clone()),
        )
}

/// The errors chart: failed requests stacked by class, and the error rate (percent, right axis).
pub fn errors_chart_of(r: &ErrorReport, zone: Option<&str>) -> Chart {
    let s = &r.series;
    over_time(s, zone)
        .y_axis(
            Axis::new()
                .type_(AxisType::Value)
                .min_interval(1)
                .name("failed"),
        )
        .y_axis(Axis::new().type_(AxisType::Value).min(0).max(100).name("%"))
        .series(
            Bar::new()
                .name("4xx")
                .stack("errors")
                .data(s.client_errors.clone()),
        )
        .series(
            Bar::new()
                .name("429")
                .stack("errors")
                .data(s.rate_limited.clone()),
        )
        .series(
            Bar::new()
                .name("5xx")
                .stack("errors")
                .data(s.server_errors.clone()),
        )
        .series(
            Line::new()
                .name("error rate %")
                .y_axis_index(1)
                .data(r.error_rate.clone()),
        )
}

/// Draws `series` in the element `id`: a new ECharts instance the first time (or when the
/// element was replaced), the whole option replaced afterwards.
pub async fn draw(id: &str, series: &RequestSeries, zone: Option<&str>) -> Result<(), JsValue> {
    draw_chart(id, chart_of(series, zone)).await
}

/// Draws the errors chart of `report` in the element `id` (see [`draw`]).
pub async fn draw_errors(
    id: &str,
    report: &ErrorReport,
    zone: Option<&str>,
) -> Result<(), JsValue> {
    draw_chart(id, errors_chart_of(report, zone)).await
}

async fn draw_chart(id: &str, chart: Chart) -> Result<(), JsValue> {
    ensure_echarts().await?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| js_error("no document"))?;
    let Some(element) = document.get_element_by_id(id) else {
        return Ok(()); // The page moved on.
    };
    DRAWN.with(|drawn| {
        let mut drawn = drawn.borrow_mut();
        if let Some((old, instance)) = drawn.as_ref() {
            if old == &element {
                let option =
                    js_sys::JSON::parse(&serde_json::to_string(&chart).map_err(js_error)?)?;
                let set_option: js_sys::Function =
                    js_sys::Reflect::get(instance, &JsValue::from_str("setOption"))?.dyn_into()?;
                set_option.call2(instance, &option, &JsValue::TRUE)?;
                return Ok(());
            }
        }
        if let Some((_, instance)) = drawn.take() {
            if let Ok(dispose) = js_sys::Reflect::get(&instance, &JsValue::from_str("dispose"))
                .and_then(|f| f.dyn_into::<js_sys::Function>())
            {
                let _ = dispose.call0(&instance);
            }
        }
        let width = element.client_width().max(320) as u32;
        let instance = WasmRenderer::new(width, 320)
            .render(id, &chart)
            .map_err(js_error)?;
        *drawn = Some((element, instance.into()));
        Ok(())
    })
}

/// Opens the live feed of `organization_id`'s usage; `on_usage` runs on each "requests
/// written" event, `on_open` each time the stream is (re)connected, `on_closed` when the
/// server refused the feed (the browser then gives up: a refusal is not a dropped connection
/// it would retry). Dropping the returned value closes it.
pub struct LiveFeed {
    source: web_sys::EventSource,
    _listener: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl LiveFeed {
    pub fn open(
        organization_id: &str,
        mut on_usage: impl FnMut() + 'static,
        mut on_open: impl FnMut() + 'static,
        mut on_closed: impl FnMut() + 'static,
    ) -> Option<LiveFeed> {
        let url = format!(
            "/events/usage?organization_id={}",
            js_sys::encode_uri_component(organization_id)
        );
        let source = web_sys::EventSource::new(&url).ok()?;
        let listener = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_| on_usage());
        source
            .add_event_listener_with_callback("usage", listener.as_ref().unchecked_ref())
            .ok()?;
        let opened = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| on_open());
        source
            .add_event_listener_with_callback("open", opened.as_ref().unchecked_ref())
            .ok()?;
        let watched = source.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            // CONNECTING: a dropped stream the browser reconnects by itself (each minute, the
            // server ends it on purpose). CLOSED: refused; the chart is no longer live.
            if watched.ready_state() == web_sys::EventSource::CLOSED {
                on_closed();
            }
        });
        source
            .add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref())
            .ok()?;
        Some(LiveFeed {
            source,
            _listener: listener,
            _on_open: opened,
            _on_error: on_error,
        })
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Fetches an export from `url`, reporting (rows received, rows in all) as the body arrives
/// (the server sends the count in `X-Keyward-Rows`; both formats end each row with a line
/// break), then hands the file to the browser as a download named `file`. Returns the rows.
pub async fn download(
    url: &str,
    file: &str,
    json: bool,
    mut on_progress: impl FnMut(i64, i64),
) -> Result<i64, JsValue> {
    use wasm_bindgen_futures::JsFuture;
    let window = web_sys::window().ok_or_else(|| js_error("no window"))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await?
        .dyn_into()?;
    if !response.ok() {
        let text = JsFuture::from(response.text()?)
            .await?
            .as_string()
            .unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("the server answered {}", response.status()));
        return Err(JsValue::from_str(&message));
    }
    let all: i64 = response
        .headers()
        .get("x-keyward-rows")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    on_progress(0, all);
    let body = response.body().ok_or_else(|| js_error("no body"))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().dyn_into()?;
    let chunks = js_sys::Array::new();
    let mut lines = 0i64;
    // Lines before the first row: CSV's header; JSON's rows each start on a new line.
    let before = if json { 0 } else { 1 };
    loop {
        let step = JsFuture::from(reader.read()).await?;
        if js_sys::Reflect::get(&step, &JsValue::from_str("done"))?.is_truthy() {
            break;
        }
        let chunk: js_sys::Uint8Array =
            js_sys::Reflect::get(&step, &JsValue::from_str("value"))?.dyn_into()?;
        lines += chunk.to_vec().iter().filter(|b| **b == b'\n').count() as i64;
        chunks.push(&chunk);
        on_progress((lines - before).max(0), all);
    }
    let kind = response
        .headers()
        .get("content-type")?
        .unwrap_or_else(|| "application/octet-stream".into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(&kind);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&chunks, &options)?;
    let href = web_sys::Url::create_object_url_with_blob(&blob)?;
    let document = window.document().ok_or_else(|| js_error("no document"))?;
    let link: web_sys::HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    link.set_href(&href);
    link.set_download(file);
    document
        .body()
        .ok_or_else(|| js_error("no body"))?
        .append_child(&link)?;
    link.click();
    link.remove();
    // Give the browser a moment to start the download before the URL goes.
    leptos::prelude::set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&href);
        },
        std::time::Duration::from_secs(60),
    );
    // The rows that arrived, counted from the body (what the header promised may differ by the
    // requests logged while the export streamed).
    let received = (lines - before).max(0);
    on_progress(received, all.max(received));
    Ok(received)
}
