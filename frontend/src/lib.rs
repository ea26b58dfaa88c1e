//! The WASM entry point: hydrates the server-rendered page into the interactive app.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy routes (see `app::lazy_pages`) need the lazy-aware hydration.
    leptos::mount::hydrate_lazy(app::App);
}
