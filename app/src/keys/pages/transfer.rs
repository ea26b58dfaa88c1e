//! Export and import of keys in the console.

use super::*;

/// Export buttons: fetch the file from the server, then offer it as a download link.
#[component]
pub(super) fn Export(org: RwSignal<String>) -> impl IntoView {
    let export = Action::new(move |format: &&'static str| {
        let format = *format;
        async move {
            export_keys(org.get_untracked(), format.to_string())
                .await
                .map(|text| (format, text))
        }
    });
    view! {
        <button type="button" class="secondary" on:click=move |_| { export.dispatch("json"); }>"Export JSON"</button>
        <button type="button" class="secondary" on:click=move |_| { export.dispatch("csv"); }>"Export CSV"</button>
        {move || export.value().get().map(|r| match r {
            Ok((format, text)) => {
                let (mime, file) = match format {
                    "csv" => ("text/csv", "keyward-keys.csv"),
                    _ => ("application/json", "keyward-keys.json"),
                };
                view! { <a href=data_url(mime, &text) download=file>{format!("Download {file}")}</a> }.into_any()
            }
            Err(error) => view! { <ErrorNote error /> }.into_any(),
        })}
    }
}

/// Reads the chosen file into `text` (and guesses the format from its name).
#[cfg(feature = "hydrate")]
pub(super) fn read_file(ev: leptos::ev::Event, text: RwSignal<String>, format: RwSignal<String>) {
    use wasm_bindgen::JsCast;
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        return;
    };
    format.set(
        if file.name().to_lowercase().ends_with(".csv") {
            "csv"
        } else {
            "json"
        }
        .into(),
    );
    leptos::task::spawn_local(async move {
        if let Ok(value) = wasm_bindgen_futures::JsFuture::from(file.text()).await {
            text.set(value.as_string().unwrap_or_default());
        }
    });
}

#[cfg(not(feature = "hydrate"))]
pub(super) fn read_file(_: leptos::ev::Event, _: RwSignal<String>, _: RwSignal<String>) {}

#[component]
pub(super) fn ImportPanel(
    org: RwSignal<String>,
    import: ServerAction<ImportKeys>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let format = RwSignal::new("json".to_string());
    let preview = Action::new(move |_: &()| {
        crate::keys::api::import_keys(
            org.get_untracked(),
            format.get_untracked(),
            text.get_untracked(),
            true,
        )
    });
    view! {
        <section class="card" role="region" aria-label="Import keys">
            <h2>"Import keys"</h2>
            <p class="hint">
                "A JSON or CSV file: a Keyward export (each row gets a new key, shown once), or keys from another system with "
                <code>"key"</code>" (plaintext) or "<code>"key_hash"</code>" (hex SHA-256). Preview first; each row is reported."
            </p>
            <label for="import-file">"File (JSON or CSV)"</label>
            <input id="import-file" type="file" accept=".json,.csv,application/json,text/csv" on:change=move |ev| read_file(ev, text, format) />
            <label for="import-format">"Format"</label>
            <select id="import-format" prop:value=move || format.get() on:change=move |ev| format.set(event_target_value(&ev))>
                <option value="json">"JSON"</option>
                <option value="csv">"CSV"</option>
            </select>
            <label for="import-text">"Keys to import"</label>
            <textarea id="import-text" rows="6" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            <div class="toolbar">
                <button type="button" class="secondary" on:click=move |_| { import.value().set(None); preview.dispatch(()); }>"Preview"</button>
                <Show when=move || matches!(preview.value().get(), Some(Ok(ref rows)) if rows.iter().any(|r| r.ok))>
                    <button type="button" on:click=move |_| { import.dispatch(ImportKeys {
                        organization_id: org.get_untracked(),
                        format: format.get_untracked(),
                        data: text.get_untracked(),
                        dry_run: false,
                    }); preview.value().set(None); }>"Import"</button>
                </Show>
            </div>
            {move || preview.value().get().map(|r| view! { <ImportResults label="Import preview" result=r /> })}
            {move || import.value().get().map(|r| view! { <ImportResults label="Import results" result=r /> })}
        </section>
    }
}

#[component]
pub(super) fn ImportResults(
    label: &'static str,
    result: Result<Vec<ImportOutcome>, AppError>,
) -> impl IntoView {
    match result {
        Err(error) => view! { <ErrorNote error /> }.into_any(),
        Ok(rows) => {
            let ok = rows.iter().filter(|r| r.ok).count();
            let issued = rows.iter().any(|r| r.key.is_some());
            view! {
                <p role="status">{format!("{label}: {ok} of {} ok", count(rows.len() as i64, "row", "rows"))}</p>
                <Show when=move || issued>
                    <p class="warning">"New keys were issued for rows without key material. Copy them now: they are not shown again."</p>
                </Show>
                <table aria-label=label>
                    <thead><tr><th scope="col">"Row"</th><th scope="col">"Name"</th><th scope="col">"Result"</th><th scope="col">"Detail"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|r| view! {
                            <tr>
                                <td>{r.row}</td>
                                <td>{r.name.clone()}</td>
                                <td>{r.action.clone()}</td>
                                <td>
                                    {r.message.clone()}
                                    {r.key.clone().map(|k| view! { <CopyField label="Issued key" value=k /> })}
                                </td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            }
            .into_any()
        }
    }
}
