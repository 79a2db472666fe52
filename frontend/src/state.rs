//! The page's state: every field of every form, the edit sets the page runs
//! on, and the selected neuron. All of it lives in the address (`?key=value`
//! for what differs from the defaults), so a reload, a bookmark or a shared
//! link restores the page as it was; a permalink (`/r/<id>`) keeps its path.

use kn_shared::{ActiveEdit, Neuron};
use leptos::prelude::*;

pub const DEFAULT_PROMPTS: &str = "The capital of France is [MASK].\nThe capital city of France is [MASK].\nFrance's capital is [MASK].\nFrance's capital city is [MASK].\nFrance's capital, [MASK].";

pub const DEFAULT_METHODS: &str =
    "ig,ig-masked-baseline,activation,grad-x-act,logprob-increase,random";
/// The default control of the same relation as the default fact (Paris).
pub const DEFAULT_SAME: &str = "The capital of Germany is [MASK].\nGermany's capital is [MASK].";
/// The default control of another relation (P19, place of birth).
pub const DEFAULT_UNRELATED: &str =
    "Dante Alighieri was born in [MASK].\nDante Alighieri's birthplace is [MASK].";

/// Declares the page's text fields once: each field's signal, its key in the
/// address and its default. `Page`, [`Page::fields`] and [`Page::from_url`]
/// come from the one list, so a new field is one line.
macro_rules! page_fields {
    ($( $(#[doc = $doc:expr])* $field:ident : $key:literal = $default:expr ),* $(,)?) => {
        /// Every form field as a signal (text, as the inputs hold it), the
        /// page's edit sets and the selected neuron.
        #[derive(Clone, Copy)]
        pub struct Page {
            $( $(#[doc = $doc])* pub $field: RwSignal<String>, )*
            /// The edit sets this page runs on, oldest first (`edits=id,id`).
            pub edits: RwSignal<Vec<ActiveEdit>>,
            /// The neuron selected in a table or the heatmap (`neuron=L3:12`).
            pub neuron: RwSignal<Option<Neuron>>,
        }

        impl Page {
            /// `(url key, default, signal)` of every text field.
            pub fn fields(&self) -> Vec<(&'static str, &'static str, RwSignal<String>)> {
                vec![ $( ($key, $default, self.$field), )* ]
            }

            /// The page as its address describes it.
            pub fn from_url() -> Page {
                Page {
                    $( $field: RwSignal::new(param($key).unwrap_or_else(|| $default.to_string())), )*
                    edits: RwSignal::new(Vec::new()),
                    neuron: RwSignal::new(param("neuron").and_then(|n| n.parse().ok())),
                }
            }
        }
    };
}

page_fields! {
    model: "model" = "",
    /// The answer every action uses (predict, analyse, update).
    target: "target" = "Paris",
    /// Where a multi-token answer's neurons are read: `all` or `first`.
    positions: "positions" = "all",
    prompt: "prompt" = "The capital of France is [MASK].",
    top_k: "top_k" = "10",
    prompts: "prompts" = DEFAULT_PROMPTS,
    steps: "steps" = "20",
    t: "t" = "0.2",
    p: "p" = "0.7",
    new_target: "new_target" = "",
    k: "k" = "4",
    lambda1: "lambda1" = "1",
    lambda2: "lambda2" = "8",
    /// `1` when checked.
    norm_scaled: "norm_scaled" = "",
    eval: "eval" = "",
    erase_neurons: "erase_neurons" = "",
    erase_with: "erase_with" = "zero",
    erase_relation: "erase_relation" = "P36",
    erase_facts: "erase_facts" = "10",
    erase_top: "erase_top" = "20",
    /// The dataset browser's relation and search.
    relation: "relation" = "P36",
    search: "q" = "",
    /// The methods lab: methods (comma-separated), k values, and an unrelated
    /// fact (answer and prompts) for specificity.
    methods: "methods" = DEFAULT_METHODS,
    ks: "ks" = "1,2,5,10,20",
    unrelated_target: "unrelated_target" = "Florence",
    unrelated_prompts: "unrelated_prompts" = DEFAULT_UNRELATED,
    /// The analysis's control of the same relation (its other-relation
    /// control is the methods' unrelated fact).
    same_target: "same_target" = "Berlin",
    same_prompts: "same_prompts" = DEFAULT_SAME,
}

fn param(key: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(key)
}

impl Page {
    /// The answer positions the form names (`all` unless it says `first`).
    pub fn answer_positions(&self) -> kn_shared::AnswerPositions {
        self.positions.get_untracked().parse().unwrap_or_default()
    }

    /// The edit-set ids the address names.
    pub fn url_edits() -> Vec<String> {
        param("edits")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// The ids of the page's edit sets, in order.
    pub fn edit_ids(&self) -> Vec<String> {
        self.edits
            .get_untracked()
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }

    /// Keep the address in step with the fields (replacing, not adding,
    /// history entries).
    pub fn sync_url(self) {
        Effect::new(move |_| {
            let Ok(params) = web_sys::UrlSearchParams::new() else {
                return;
            };
            if param("view").as_deref() == Some("experiments") {
                return;
            }
            for (key, default, sig) in self.fields() {
                let v = sig.get();
                if v != default {
                    params.append(key, &v);
                }
            }
            let ids: Vec<String> = self.edits.get().iter().map(|e| e.id.clone()).collect();
            if !ids.is_empty() {
                params.append("edits", &ids.join(","));
            }
            if let Some(n) = self.neuron.get() {
                params.append("neuron", &n.to_string());
            }
            let Some(w) = web_sys::window() else { return };
            let path = w.location().pathname().unwrap_or_default();
            let q = String::from(params.to_string());
            let url = if q.is_empty() {
                path
            } else {
                format!("{path}?{q}")
            };
            if let Ok(h) = w.history() {
                let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
            }
        });
    }
}

/// Non-empty trimmed lines.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}
