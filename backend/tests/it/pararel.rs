//! ParaRel from the repository's data/ folder by SPEC's rules: the counts, the 1-1 subset the
//! authors prepared, causal templates, and clear errors for bad data.

use kn::pararel::{blank_ends, ParaRel};

fn data() -> ParaRel {
    ParaRel::load(&ParaRel::default_dir()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn counts_match_the_paper() {
    let p = data();
    assert_eq!(p.relations.len(), 34);
    assert_eq!(p.n_facts(), 27_738);
    assert_eq!(p.n_prompts(), 253_448);
    let p36 = p.relation("P36").unwrap();
    assert_eq!((p36.label.as_str(), p36.kind.as_str()), ("capital", "1-1"));
    // For a causal model: templates whose blank ends the sentence.
    let (mut facts, mut prompts) = (0, 0);
    for r in &p.relations {
        let n = r.causal_templates().len();
        if n > 0 {
            facts += r.facts.len();
            prompts += n * r.facts.len();
        }
    }
    println!("causal models: {facts} facts, {prompts} prompts with the blank at the end");
    assert!(facts > 0 && prompts < 253_448);
}

#[test]
fn one_to_one_prompts_match_the_authors_data_11() {
    let p = data();
    let path = ParaRel::default_dir().join("kn-official/PARAREL/data_11.json");
    let d11: Vec<Vec<Vec<String>>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut ours: Vec<(String, String)> = Vec::new();
    for r in p.relations.iter().filter(|r| r.kind == "1-1") {
        for f in &r.facts {
            for prompt in r.prompts(f) {
                ours.push((prompt, f.object.clone()));
            }
        }
    }
    let theirs: Vec<(String, String)> = d11
        .iter()
        .flatten()
        .map(|x| (x[0].clone(), x[1].clone()))
        .collect();
    assert_eq!(ours.len(), theirs.len());
    let mut a = ours.clone();
    let mut b = theirs.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn bad_data_is_a_clear_error() {
    let e = ParaRel::load(std::path::Path::new("/nonexistent"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("--data DIR"), "{e}");
    // A malformed pattern line: the error names the file and the line.
    let tmp = tempfile::tempdir().unwrap();
    let src = ParaRel::default_dir().join("kn-official");
    let dst = tmp.path().join("kn-official");
    for sub in ["PARAREL/raw_data/patterns", "LAMA/raw_data"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
    }
    std::fs::copy(
        src.join("PARAREL/query_pairs.json"),
        dst.join("PARAREL/query_pairs.json"),
    )
    .unwrap();
    std::fs::copy(
        src.join("LAMA/raw_data/relations.jsonl"),
        dst.join("LAMA/raw_data/relations.jsonl"),
    )
    .unwrap();
    for e in std::fs::read_dir(src.join("PARAREL/raw_data/patterns")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(
            e.path(),
            dst.join("PARAREL/raw_data/patterns").join(e.file_name()),
        )
        .unwrap();
    }
    let p36 = dst.join("PARAREL/raw_data/patterns/P36.jsonl");
    let mut text = std::fs::read_to_string(&p36).unwrap();
    text.push_str("{\"pattern\": broken\n");
    std::fs::write(&p36, text).unwrap();
    let e = ParaRel::load(tmp.path()).err().unwrap().to_string();
    assert!(
        e.contains("P36.jsonl:15") && e.contains("not valid JSON"),
        "{e}"
    );
    assert!(data()
        .relation("P9999")
        .err()
        .unwrap()
        .to_string()
        .contains("unknown relation `P9999`"));
    assert!(blank_ends("The capital of [X] is [Y] .") && !blank_ends("[Y] is the capital of [X]."));
}
