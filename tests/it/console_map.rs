//! A Map on the console, over plain HTTP against a real `sluice server`: the parent's page
//! shows its run and its children, a child's page its parent, and the list only the parent.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::console::{client, create_workflow, login, page, server, token};

/// A Map's iterations on the console: the parent's page shows its run and its children, each
/// linked; a child's page links back to its parent and offers no Stop or Redrive of its own;
/// the executions list shows the parent only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maps_page_shows_its_run_and_children_and_a_child_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    create_workflow(
        path,
        "each",
        &json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": true,
            "ToleratedFailureCount": 1,
            "ItemProcessor": {"StartAt": "Which", "States": {
                "Which": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Bad"}], "Default": "Good"},
                "Good": {"Type": "Pass", "End": true},
                "Bad": {"Type": "Fail", "Error": "Sluice.Two", "Cause": "two is bad"}}}}}}),
    );
    let admin = token(path, "admin", "ops");
    let (_server, base) = server(path).await;
    let started: Value = tests::http()
        .post(format!("{base}/workflows/each/executions"))
        .bearer_auth(&admin)
        .json(&json!({"input": [1, 2, 3]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let done = tests::wait_for_execution(path, &id, std::time::Duration::from_secs(60));
    assert_eq!(done, "SUCCEEDED");
    let client = client();
    let (cookie, _) = login(&client, &base, &admin).await;

    let (status, parent) = page(&client, &format!("{base}/ui/executions/{id}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let runs = &parent[parent.find("id=\"map-runs\"").expect("the runs table")..];
    let row = &runs[runs.find("<tbody>").unwrap()..runs.find("</tbody>").unwrap()];
    for cell in [
        "<td>Each</td>",
        "<td>MAP</td>",
        "SUCCEEDED",
        "<td>3</td>",
        "<td>2</td>",
        "<td>1</td>",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    let children = &parent[parent.find("id=\"children\"").expect("the children table")..];
    let children = &children[..children.find("</table>").unwrap()];
    let prefix = "href=\"/ui/executions/";
    let links: Vec<&str> = children
        .match_indices(prefix)
        .map(|(at, _)| {
            let id = &children[at + prefix.len()..];
            &id[..id.find('"').unwrap()]
        })
        .collect();
    assert_eq!(links.len(), 3, "{children}");
    assert!(children.contains("<code>Sluice.Two</code>"));

    // The failed child (item 1) links back and has no actions of its own.
    let (status, child) = page(
        &client,
        &format!("{base}/ui/executions/{}", links[1]),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        child.contains(&format!("id=\"parent\" href=\"/ui/executions/{id}\"")),
        "{child}"
    );
    assert!(child.contains("item or branch 1"));
    assert!(child.contains("stopped and redriven through its parent"));
    assert!(!child.contains("/redrive\""), "no Redrive on a child");

    // The list shows the parent, not its children.
    let (_, list) = page(
        &client,
        &format!("{base}/ui/executions?workflow=each"),
        &cookie,
    )
    .await;
    assert!(list.contains(&id));
    for link in &links {
        assert!(!list.contains(link), "{link} is a child");
    }
    // A child is refused a redrive over the API, naming its parent.
    let refused = tests::http()
        .post(format!("{base}/executions/{}/redrive", links[1]))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains(&id));
}
