//! `/users`: accounts, roles, profiles, and who may see what.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn users_see_themselves_and_staff_see_everyone() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let manager = app.manager().await;

    let own = app.get(&format!("/users/{}", alice.id), &alice.token).await;
    own.assert_status(200);
    assert_eq!(own.body["username"], "alice");
    assert_eq!(own.body["profile"], json!(null));

    app.get(&format!("/users/{}", bob.id), &alice.token)
        .await
        .assert_problem(403);
    let seen = app.get(&format!("/users/{}", bob.id), &manager.token).await;
    seen.assert_status(200);
    assert_eq!(seen.body["email"], "bob@example.com");

    let unknown = uuid::Uuid::now_v7();
    app.get(&format!("/users/{unknown}"), &manager.token)
        .await
        .assert_problem(404);
    app.get("/users/not-a-uuid", &manager.token)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn only_staff_list_users_filtered_and_paginated() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    app.register("carol").await;
    let admin = app.admin().await;

    app.get("/users", &alice.token).await.assert_problem(403);

    let first = app.get("/users?limit=2", &admin.token).await;
    first.assert_status(200);
    let names: Vec<&str> = first.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["admin", "carol"], "newest first");
    let cursor = first.body["nextCursor"].as_str().expect("cursor");
    let second = app
        .get(&format!("/users?limit=2&cursor={cursor}"), &admin.token)
        .await;
    let names: Vec<&str> = second.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["bob", "alice"]);
    assert_eq!(second.body["nextCursor"], json!(null));

    let admins = app.get("/users?role=ADMIN", &admin.token).await;
    assert_eq!(admins.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(admins.body["items"][0]["role"], "ADMIN");

    app.get("/users?limit=0", &admin.token)
        .await
        .assert_invalid_fields(&["limit"]);
    app.get("/users?limit=101", &admin.token)
        .await
        .assert_invalid_fields(&["limit"]);
    app.get("/users?role=OWNER&cursor=zzz", &admin.token)
        .await
        .assert_invalid_fields(&["role", "cursor"]);
}

#[tokio::test]
async fn admins_change_roles_and_the_change_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    let dave = app.register("dave").await;

    app.patch(
        &format!("/users/{}/role", dave.id),
        &manager.token,
        Some(json!({ "role": "ADMIN" })),
    )
    .await
    .assert_problem(403);
    app.patch(
        &format!("/users/{}/role", dave.id),
        &dave.token,
        Some(json!({ "role": "ADMIN" })),
    )
    .await
    .assert_problem(403);
    app.patch(
        &format!("/users/{}/role", dave.id),
        &admin.token,
        Some(json!({ "role": "BOSS" })),
    )
    .await
    .assert_invalid_fields(&["role"]);
    app.patch(
        &format!("/users/{}/role", dave.id),
        &admin.token,
        Some(json!({})),
    )
    .await
    .assert_invalid_fields(&["role"]);
    app.patch(
        &format!("/users/{}/role", uuid::Uuid::now_v7()),
        &admin.token,
        Some(json!({ "role": "USER" })),
    )
    .await
    .assert_problem(404);

    // Dave's token still says USER, but the role is read on every request.
    app.get("/users", &dave.token).await.assert_problem(403);
    let promoted = app
        .patch(
            &format!("/users/{}/role", dave.id),
            &admin.token,
            Some(json!({ "role": "MANAGER" })),
        )
        .await;
    promoted.assert_status(200);
    assert_eq!(promoted.body["role"], "MANAGER");
    app.get("/users", &dave.token).await.assert_status(200);

    let changes = app.audit_rows("ROLE_CHANGED").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].actor_id, Some(admin.id));
    assert_eq!(changes[0].entity_id, Some(dave.id));
    assert_eq!(
        changes[0].details,
        json!({ "from": "USER", "to": "MANAGER" })
    );
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let demote_self = app
        .patch(
            &format!("/users/{}/role", admin.id),
            &admin.token,
            Some(json!({ "role": "USER" })),
        )
        .await;
    assert!(
        demote_self.assert_problem(409)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("last admin"))
    );
    // Re-asserting the same role is fine.
    app.patch(
        &format!("/users/{}/role", admin.id),
        &admin.token,
        Some(json!({ "role": "ADMIN" })),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = TestApp::spawn().await;
    let first = app.user_with_role("first", "ADMIN").await;
    let second = app.user_with_role("second", "ADMIN").await;
    let second_path = format!("/users/{}/role", second.id);
    let first_path = format!("/users/{}/role", first.id);
    let (a, b) = tokio::join!(
        app.patch(&second_path, &first.token, Some(json!({ "role": "USER" }))),
        app.patch(&first_path, &second.token, Some(json!({ "role": "USER" }))),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    // Either one demotion wins and the other is refused (409, or 403 when
    // the loser was already demoted before its own request was checked).
    assert!(
        statuses == [200, 403] || statuses == [200, 409],
        "{statuses:?}"
    );
    let admins = app
        .get(
            "/users?role=ADMIN",
            if a.status == 200 {
                &first.token
            } else {
                &second.token
            },
        )
        .await;
    assert_eq!(
        admins.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        admins.text
    );
}

#[tokio::test]
async fn profiles_are_created_replaced_and_read() {
    let app = TestApp::spawn().await;
    let erin = app.register("erin").await;
    let other = app.register("other").await;
    let manager = app.manager().await;

    app.get(&format!("/users/{}/profile", erin.id), &erin.token)
        .await
        .assert_problem(404);

    let created = app
        .put(
            "/users/me/profile",
            &erin.token,
            json!({ "firstName": " Erin ", "lastName": "Brown", "phoneNumber": "+1 555-0100", "dateOfBirth": "1990-02-03" }),
        )
        .await;
    created.assert_status(200);
    assert_eq!(created.body["firstName"], "Erin");
    assert_eq!(created.body["phoneNumber"], "+1 555-0100");
    assert_eq!(created.body["dateOfBirth"], "1990-02-03");
    assert_eq!(created.body["address"], json!(null));

    app.clock.advance(chrono::Duration::minutes(10));
    let replaced = app
        .put(
            "/users/me/profile",
            &erin.token,
            json!({ "firstName": "Erin", "lastName": "Green", "address": "1 Main St" }),
        )
        .await;
    replaced.assert_status(200);
    assert_eq!(replaced.body["lastName"], "Green");
    assert_eq!(
        replaced.body["phoneNumber"],
        json!(null),
        "a PUT replaces the whole profile"
    );
    assert_eq!(replaced.body["createdAt"], "2026-01-15T10:00:00Z");
    assert_eq!(replaced.body["updatedAt"], "2026-01-15T10:10:00Z");

    let by_staff = app
        .get(&format!("/users/{}/profile", erin.id), &manager.token)
        .await;
    by_staff.assert_status(200);
    assert_eq!(by_staff.body["address"], "1 Main St");
    app.get(&format!("/users/{}/profile", erin.id), &other.token)
        .await
        .assert_problem(403);
    let me = app.get("/users/me", &erin.token).await;
    assert_eq!(me.body["profile"]["lastName"], "Green");
    app.get("/users/me/profile", &erin.token)
        .await
        .assert_status(200);

    let updates = app.audit_rows("PROFILE_UPDATED").await;
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].details, json!({ "created": true }));
    assert_eq!(updates[1].details, json!({ "created": false }));
}

#[tokio::test]
async fn profile_validation_names_every_bad_field() {
    let app = TestApp::spawn().await;
    let fay = app.register("fay").await;
    app.put("/users/me/profile", &fay.token, json!({}))
        .await
        .assert_invalid_fields(&["firstName", "lastName"]);
    app.put(
        "/users/me/profile",
        &fay.token,
        json!({
            "firstName": "",
            "lastName": "x".repeat(101),
            "phoneNumber": "call me maybe",
            "address": "a".repeat(501),
            "dateOfBirth": "2026-01-15"
        }),
    )
    .await
    .assert_invalid_fields(&[
        "firstName",
        "lastName",
        "phoneNumber",
        "address",
        "dateOfBirth",
    ]);
    app.put(
        "/users/me/profile",
        &fay.token,
        json!({ "firstName": "F", "lastName": "L", "dateOfBirth": "15/01/1990" }),
    )
    .await
    .assert_invalid_fields(&["dateOfBirth"]);
    app.put(
        "/users/me/profile",
        &fay.token,
        json!({ "firstName": "F", "lastName": "L", "nickname": "x" }),
    )
    .await
    .assert_problem(400);
    app.get("/users/me/profile", &fay.token)
        .await
        .assert_problem(404);
}

/// A user removed behind the service's back (by hand in the database) can
/// do nothing more with the tokens they hold: every request is a 401, and
/// none is a server error.
#[tokio::test]
async fn a_user_deleted_outside_the_api_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let gone = app.register("gone").await;
    // Cached now, on the backends that cache it.
    app.get("/users/me", &gone.token).await.assert_status(200);
    app.sql("DELETE FROM users WHERE username_key = 'gone'")
        .await;
    // PostgreSQL announces the deletion after it commits; the cached copy
    // is dropped within milliseconds.
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(3), async || {
            app.get("/users/me", &gone.token).await.status == 401
        })
        .await,
        "the deleted user's token still works"
    );
    app.post(
        "/loans/apply",
        Some(&gone.token),
        json!({ "amount": "1000.00", "termMonths": 12 }),
    )
    .await
    .assert_problem(401);
    assert_eq!(app.count("loans").await, 0);
}

/// A write that refers to a row that has vanished is the client's
/// conflict, never a server error, on either database.
#[tokio::test]
async fn a_write_referring_to_a_vanished_row_is_a_conflict() {
    use loan_tracker::db::entities::{LoanStatus, loan};
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let app = TestApp::spawn().await;
    let now = crate::support::start_time();
    let orphan = loan::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(uuid::Uuid::now_v7()),
        status: Set(LoanStatus::Pending),
        currency: Set("USD".to_owned()),
        principal_minor: Set(100_000),
        annual_interest_rate: Set("12.0".to_owned()),
        term_months: Set(12),
        purpose: Set(None),
        installment_minor: Set(0),
        total_payable_minor: Set(0),
        total_paid_minor: Set(0),
        penalties_minor: Set(0),
        penalties_paid_minor: Set(0),
        principal_paid_minor: Set(0),
        interest_paid_minor: Set(0),
        next_due_date: Set(None),
        first_due_date: Set(None),
        approved_by: Set(None),
        approved_at: Set(None),
        rejected_by: Set(None),
        rejected_at: Set(None),
        rejection_reason: Set(None),
        cancelled_at: Set(None),
        paid_off_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        written_off_at: Set(None),
        principal_written_off_minor: Set(0),
        paid_before_write_off_minor: Set(0),
        interest_paid_before_write_off_minor: Set(0),
        penalties_paid_before_write_off_minor: Set(0),
    };
    let error = loan::Entity::insert(orphan)
        .exec_without_returning(&app.state.db.write)
        .await
        .expect_err("no such user");
    let problem = loan_tracker::http::error::AppError::from(error).problem();
    assert_eq!(problem.status, 409);
    assert_eq!(
        problem.detail,
        "A record this request refers to no longer exists."
    );
}
