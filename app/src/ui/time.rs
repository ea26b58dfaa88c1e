//! How the console shows times: every date in the user's preferred time zone (Profile →
//! Preferences), or the browser's when they chose none.
//!
//! The server renders times in UTC (it cannot know the browser's zone, and the first render in
//! the browser must match it); once the app has hydrated, [`Time`] shows the same instant in
//! the viewer's zone. Charts align their buckets and label their axis with [`Clock`] too.

use leptos::prelude::*;

/// The viewer's time zone: `zone` is the user's preference (an IANA name), `None` for the
/// browser's.
#[derive(Clone, Copy)]
pub struct Clock {
    pub zone: RwSignal<Option<String>>,
}

/// Provides the [`Clock`] for the whole app.
pub fn provide_clock() {
    provide_context(Clock {
        zone: RwSignal::new(None),
    });
}

pub fn use_clock() -> Clock {
    expect_context::<Clock>()
}

impl Clock {
    /// `at` (RFC 3339) as `YYYY-MM-DD HH:MM` and the zone's short name, in the viewer's zone
    /// (in the browser; UTC on the server).
    pub fn format(&self, at: &str) -> String {
        let zone = self.zone.get();
        local(at, zone.as_deref()).unwrap_or_else(|| utc(at))
    }

    /// The viewer's offset from UTC now, in minutes east (for aligning chart buckets).
    pub fn offset_minutes(&self) -> i32 {
        offset_now(self.zone.get().as_deref())
    }

    /// Keeps `tz` at the viewer's offset, touching it only when the offset changes (so that a
    /// refetch of the user does not refetch what depends on `tz`).
    pub fn follow(&self, tz: RwSignal<i32>) {
        let offset = self.offset_minutes();
        if tz.get_untracked() != offset {
            tz.set(offset);
        }
    }
}

#[cfg(feature = "hydrate")]
fn local(at: &str, zone: Option<&str>) -> Option<String> {
    let ms = js_sys::Date::parse(at);
    if !ms.is_finite() {
        return None;
    }
    let p = browser::parts(ms, zone)?;
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {}",
        p.year, p.month, p.day, p.hour, p.minute, p.zone_name
    ))
}

#[cfg(not(feature = "hydrate"))]
fn local(_at: &str, _zone: Option<&str>) -> Option<String> {
    None
}

#[cfg(feature = "hydrate")]
fn offset_now(zone: Option<&str>) -> i32 {
    browser::offset_minutes(js_sys::Date::now(), zone)
}

#[cfg(not(feature = "hydrate"))]
fn offset_now(_zone: Option<&str>) -> i32 {
    0
}

/// `2026-11-26T15:30:12.345Z` → `2026-11-26 15:30 UTC`; anything else as it is.
pub fn utc(at: &str) -> String {
    match (at.get(..10), at.get(11..16)) {
        (Some(date), Some(time)) if at.as_bytes().get(10) == Some(&b'T') => {
            format!("{date} {time} UTC")
        }
        _ => at.to_string(),
    }
}

/// The current instant as RFC 3339 (the browser's clock once hydrated, the server's before).
pub fn now_rfc3339() -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::new_0()
            .to_iso_string()
            .as_string()
            .unwrap_or_default()
    }
    #[cfg(all(feature = "ssr", not(feature = "hydrate")))]
    {
        crate::ssr::db::rfc3339(crate::ssr::db::now_ms())
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        String::new()
    }
}

/// An instant, shown in the viewer's zone; the machine-readable value stays in `datetime`.
///
/// Each one first renders UTC, exactly as the server did: hydration keeps the server's text
/// node without rewriting it, so a first render in the local zone would never show (a lazily
/// loaded page hydrates after the app's effects ran). Its own effect, run once it is mounted,
/// then switches it to the viewer's zone.
#[component]
pub fn Time(#[prop(into)] at: String) -> impl IntoView {
    let clock = use_clock();
    let mounted = RwSignal::new(false);
    // `try_set`: a date re-rendered away before its effect ran is simply gone.
    Effect::new(move |_| {
        mounted.try_set(true);
    });
    let shown = {
        let at = at.clone();
        move || {
            // `try_get`: this can run once more after a re-render disposed the date.
            if mounted.try_get().unwrap_or(false) {
                clock.format(&at)
            } else {
                utc(&at)
            }
        }
    };
    view! { <time datetime=at>{shown}</time> }
}

/// An optional instant, or `none` (e.g. "never").
#[component]
pub fn MaybeTime(at: Option<String>, #[prop(into)] none: String) -> impl IntoView {
    match at {
        Some(at) => view! { <Time at /> }.into_any(),
        None => none.into_any(),
    }
}

/// The browser's side: `Intl.DateTimeFormat` knows every zone, so the WASM bundle carries no
/// time-zone database.
#[cfg(feature = "hydrate")]
pub mod browser {
    use wasm_bindgen::{JsCast, JsValue};

    /// An instant's wall-clock fields in a zone.
    pub struct Parts {
        pub year: i32,
        pub month: u32,
        pub day: u32,
        pub hour: u32,
        pub minute: u32,
        pub second: u32,
        pub zone_name: String,
    }

    /// The fields of `ms` in `zone` (`None`: the browser's), or `None` when the browser does
    /// not know the zone.
    pub fn parts(ms: f64, zone: Option<&str>) -> Option<Parts> {
        let options = js_sys::Object::new();
        let set = |k: &str, v: &str| {
            js_sys::Reflect::set(&options, &JsValue::from_str(k), &JsValue::from_str(v))
        };
        for (k, v) in [
            ("year", "numeric"),
            ("month", "2-digit"),
            ("day", "2-digit"),
            ("hour", "2-digit"),
            ("minute", "2-digit"),
            ("second", "2-digit"),
            ("hourCycle", "h23"),
            ("timeZoneName", "short"),
        ] {
            set(k, v).ok()?;
        }
        if let Some(zone) = zone {
            set("timeZone", zone).ok()?;
        }
        let intl = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("Intl")).ok()?;
        let ctor: js_sys::Function =
            js_sys::Reflect::get(&intl, &JsValue::from_str("DateTimeFormat"))
                .ok()?
                .dyn_into()
                .ok()?;
        let args = js_sys::Array::of2(&JsValue::from_str("en-US"), &options);
        // An unknown zone throws a RangeError: caught here, never a panic.
        let format = js_sys::Reflect::construct(&ctor, &args).ok()?;
        let to_parts: js_sys::Function =
            js_sys::Reflect::get(&format, &JsValue::from_str("formatToParts"))
                .ok()?
                .dyn_into()
                .ok()?;
        let list: js_sys::Array = to_parts
            .call1(&format, &js_sys::Date::new(&JsValue::from_f64(ms)))
            .ok()?
            .dyn_into()
            .ok()?;
        let mut p = Parts {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            zone_name: String::new(),
        };
        for part in list.iter() {
            let field = |k: &str| {
                js_sys::Reflect::get(&part, &JsValue::from_str(k))
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            let value = field("value");
            let n = value.parse::<u32>().unwrap_or(0);
            match field("type").as_str() {
                "year" => p.year = value.parse().unwrap_or(0),
                "month" => p.month = n,
                "day" => p.day = n,
                "hour" => p.hour = n % 24,
                "minute" => p.minute = n,
                "second" => p.second = n,
                "timeZoneName" => p.zone_name = value,
                _ => {}
            }
        }
        Some(p)
    }

    /// The zone's offset from UTC at `ms`, in minutes east.
    pub fn offset_minutes(ms: f64, zone: Option<&str>) -> i32 {
        let Some(p) = parts(ms, zone) else {
            return -(js_sys::Date::new(&JsValue::from_f64(ms)).get_timezone_offset() as i32);
        };
        let wall = js_sys::Date::utc(p.year as f64, (p.month as f64) - 1.0)
            + ((p.day as f64 - 1.0) * 86_400.0
                + p.hour as f64 * 3_600.0
                + p.minute as f64 * 60.0
                + p.second as f64)
                * 1_000.0;
        let exact = ms - ms.rem_euclid(1_000.0);
        ((wall - exact) / 60_000.0).round() as i32
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn the_server_shows_utc_to_the_minute() {
        assert_eq!(utc("2026-11-26T15:30:12.345Z"), "2026-11-26 15:30 UTC");
        assert_eq!(utc("2026-11-26T15:30:12Z"), "2026-11-26 15:30 UTC");
        assert_eq!(utc("never"), "never");
        assert_eq!(utc(""), "");
    }
}
