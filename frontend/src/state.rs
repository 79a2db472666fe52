//! The page's state: every field of every form, the edit sets the page runs
//! on, and the selected neuron. All of it lives in the address (`?key=value`
//! for what differs from the defaults), so a reload, a bookmark or a shared
//! link restores the page as it was; a permalink (`/r/<id>`) keeps its path.

use kn_shared::{ActiveEdit, Neuron};
use leptos::prelude::*;

pub const DEFAULT_PROMPTS: &str = "The capital of France is [MASK].\nThe capital city of France is [MASK].\nFrance's capital is [MASK].\nFrance's capital city is [MASK].\nFrance's capital, [MASK].";

pub const DEFAULT_METHODS: &str =
    "ig,ig-masked-baseline,activation,grad-x-act,logprob-increase,random";
pub const DEFAULT_UNRELATED: &str =
    "The capital of Germany is [MASK].\nGermany's capital is [MASK].";

/// Every form field as a signal (text, as the inputs hold it).
#[derive(Clone, Copy)]
pub struct Page {
    pub model: RwSignal<String>,
    /// The answer every action uses (predict, analyse, update).
    pub target: RwSignal<String>,
    /// Where a multi-token answer's neurons are read: `all` or `first`.
    pub positions: RwSignal<String>,
    pub prompt: RwSignal<String>,
    pub top_k: RwSignal<String>,
    pub prompts: RwSignal<String>,
    pub steps: RwSignal<String>,
    pub t: RwSignal<String>,
    pub p: RwSignal<String>,
    pub new_target: RwSignal<String>,
    pub k: RwSignal<String>,
    pub lambda1: RwSignal<String>,
    pub lambda2: RwSignal<String>,
    /// `1` when checked.
    pub norm_scaled: RwSignal<String>,
    pub eval: RwSignal<String>,
    pub erase_neurons: RwSignal<String>,
    pub erase_with: RwSignal<String>,
    pub erase_relation: RwSignal<String>,
    pub erase_facts: RwSignal<String>,
    pub erase_top: RwSignal<String>,
    /// The dataset browser's relation and search.
    pub relation: RwSignal<String>,
    pub search: RwSignal<String>,
    /// The methods lab: methods (comma-separated), k values, and an unrelated
    /// fact (answer and prompts) for specificity.
    pub methods: RwSignal<String>,
    pub ks: RwSignal<String>,
    pub unrelated_target: RwSignal<String>,
    pub unrelated_prompts: RwSignal<String>,
    /// The edit sets this page runs on, oldest first (`edits=id,id`).
    pub edits: RwSignal<Vec<ActiveEdit>>,
    /// The neuron selected in a table or the heatmap (`neuron=L3:12`).
    pub neuron: RwSignal<Option<Neuron>>,
}

fn param(key: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(key)
}

impl Page {
    /// `(url key, default, signal)` of every text field.
    pub fn fields(&self) -> [(&'static str, &'static str, RwSignal<String>); 26] {
        [
            ("model", "", self.model),
            ("target", "Paris", self.target),
            ("positions", "all", self.positions),
            ("prompt", "The capital of France is [MASK].", self.prompt),
            ("top_k", "10", self.top_k),
            ("prompts", DEFAULT_PROMPTS, self.prompts),
            ("steps", "20", self.steps),
            ("t", "0.2", self.t),
            ("p", "0.7", self.p),
            ("new_target", "", self.new_target),
            ("k", "4", self.k),
            ("lambda1", "1", self.lambda1),
            ("lambda2", "8", self.lambda2),
            ("norm_scaled", "", self.norm_scaled),
            ("eval", "", self.eval),
            ("erase_neurons", "", self.erase_neurons),
            ("erase_with", "zero", self.erase_with),
            ("erase_relation", "P36", self.erase_relation),
            ("erase_facts", "10", self.erase_facts),
            ("erase_top", "20", self.erase_top),
            ("relation", "P36", self.relation),
            ("q", "", self.search),
            ("methods", DEFAULT_METHODS, self.methods),
            ("ks", "1,2,5,10,20", self.ks),
            ("unrelated_target", "Berlin", self.unrelated_target),
            (
                "unrelated_prompts",
                DEFAULT_UNRELATED,
                self.unrelated_prompts,
            ),
        ]
    }

    /// The page as its address describes it.
    pub fn from_url() -> Page {
        let s = || RwSignal::new(String::new());
        let page = Page {
            model: s(),
            target: s(),
            positions: s(),
            prompt: s(),
            top_k: s(),
            prompts: s(),
            steps: s(),
            t: s(),
            p: s(),
            new_target: s(),
            k: s(),
            lambda1: s(),
            lambda2: s(),
            norm_scaled: s(),
            eval: s(),
            erase_neurons: s(),
            erase_with: s(),
            erase_relation: s(),
            erase_facts: s(),
            erase_top: s(),
            relation: s(),
            search: s(),
            methods: s(),
            ks: s(),
            unrelated_target: s(),
            unrelated_prompts: s(),
            edits: RwSignal::new(Vec::new()),
            neuron: RwSignal::new(param("neuron").and_then(|n| n.parse().ok())),
        };
        for (key, default, sig) in page.fields() {
            sig.set(param(key).unwrap_or_else(|| default.to_string()));
        }
        page
    }

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
