use super::*;
use crate::queries::RowUpdate;
use serde_json::json;

fn row(tag: &str) -> Row {
    Row(vec![
        ("repository".into(), json!("team/app")),
        ("tag".into(), json!(tag)),
    ])
}

fn result(seq: i64, tags: &[&str]) -> QueryResult {
    QueryResult {
        seq,
        rows: tags.iter().map(|t| row(t)).collect(),
    }
}

fn kinds(rs: &[Reaction]) -> Vec<(Change, String)> {
    rs.iter()
        .map(|r| {
            (
                r.change,
                r.row.get("tag").unwrap().as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn owed(change: Change, tags: &[&str]) -> Vec<(Change, String)> {
    tags.iter().map(|t| (change, t.to_string())).collect()
}

#[test]
fn a_row_is_known_whatever_the_order_of_its_fields() {
    let mut r = row("v1");
    let a = r.key();
    r.0.reverse();
    assert_eq!(r.key(), a);
    assert_eq!(r.canonical(), r#"{"repository":"team/app","tag":"v1"}"#);
    assert_eq!(r.to_json(), r#"{"tag":"v1","repository":"team/app"}"#);
}

#[test]
fn only_what_did_not_succeed_is_owed_again() {
    let mut s = WatchState::new("q");
    let first = s.resync(&result(3, &["v1", "v2"]));
    assert_eq!(kinds(&first.reactions), owed(Change::Added, &["v1", "v2"]));
    s.succeeded(&first.reactions[0]);
    // v2's reaction failed; v3 arrives; v1 leaves.
    let later = s.apply(&QueryDiff {
        seq: 4,
        added: vec![row("v3")],
        removed: vec![row("v1")],
        ..Default::default()
    });
    assert_eq!(
        kinds(&later),
        vec![(Change::Removed, "v1".into()), (Change::Added, "v3".into())]
    );
    s.succeeded(&later[1]);
    // Reconnected: v2 is owed still, v3 is not; v4 came while away.
    let again = s.resync(&result(9, &["v2", "v3", "v4"]));
    assert_eq!(kinds(&again.reactions), owed(Change::Added, &["v2", "v4"]));
    assert_eq!(again.added, vec![row("v4")]);
    assert!(again.removed.is_empty());
    assert_eq!(s.last_seq, Some(9));
}

#[test]
fn rows_gone_while_away_are_removed_and_forgotten() {
    let mut s = WatchState::new("q");
    let first = s.resync(&result(1, &["v1", "v2"]));
    for r in &first.reactions {
        s.succeeded(r);
    }
    let again = s.resync(&result(2, &[]));
    assert_eq!(
        kinds(&again.reactions),
        owed(Change::Removed, &["v1", "v2"])
    );
    assert_eq!(again.removed.len(), 2);
    assert!(s.rows.is_empty(), "the state holds only the result");
}

#[test]
fn an_update_runs_for_its_new_row_and_identical_rows_are_one() {
    let mut s = WatchState::new("q");
    let first = s.resync(&result(1, &["v1", "v1"]));
    assert_eq!(first.reactions.len(), 1);
    s.succeeded(&first.reactions[0]);
    let update = RowUpdate {
        before: row("v1"),
        after: row("v1b"),
    };
    // One of the two identical rows changes: the other remains, done.
    let rs = s.apply(&QueryDiff {
        seq: 2,
        updated: vec![update],
        ..Default::default()
    });
    assert_eq!(kinds(&rs), vec![(Change::Updated, "v1b".into())]);
    s.succeeded(&rs[0]);
    let again = s.resync(&result(3, &["v1", "v1b"]));
    assert!(again.reactions.is_empty(), "{:?}", again.reactions);
}

#[tokio::test]
async fn saved_atomically_and_never_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    assert!(WatchState::load(&path).await.unwrap().is_none());
    let mut s = WatchState::new("q");
    let r = s.resync(&result(5, &["v1"]));
    s.succeeded(&r.reactions[0]);
    s.save(&path).await.unwrap();
    s.save(&path).await.unwrap();
    let back = WatchState::load(&path).await.unwrap().unwrap();
    assert!(back.is_for("q") && !back.is_for("other"));
    assert_eq!(back.last_seq, Some(5));
    assert_eq!(back.rows.len(), 1);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("state.json")],
        "no temporary file left"
    );

    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for e in [
        WatchState::load(&link).await.unwrap_err(),
        s.save(&link).await.unwrap_err(),
    ] {
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::Verification);
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}
