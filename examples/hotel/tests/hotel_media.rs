//! Pictures over HTTP (`rocket::local`): upload, download, the cross-tenant 404, replacement, limits.

mod support;

use image::ImageFormat;
use serde_json::json;
use support::{image_bytes, App, Body, Http, Options};

const DEMO1: [(&str, &str); 1] = [("Tenant-Header", "demo1")];
const DEMO2: [(&str, &str); 1] = [("Tenant-Header", "demo2")];

fn upload(file_name: &str, bytes: &[u8]) -> Body {
    Body::multipart(
        &[
            ("name", "Ritz"),
            ("location", "Paris"),
            ("description", "Grand"),
        ],
        &[("picture", file_name, bytes)],
    )
}

#[test]
fn upload_download_and_isolation() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");
    server.create_tenant("demo2");

    let png = image_bytes(ImageFormat::Png);
    let created = server.send("POST", "/hotels/", &DEMO1, Some(upload("ritz.png", &png)));
    assert_eq!(created.status, 201, "{}", created.text());
    let hotel = created.json();
    assert_eq!(hotel["name"], "Ritz");
    let url = hotel["picture"].as_str().expect("a picture URL").to_owned();
    assert!(
        url.starts_with("/media/hotels/ritz_") && url.ends_with(".png"),
        "{url}"
    );

    // Stored under MEDIA_ROOT/<schema>/.
    let on_disk = server
        .media_root()
        .join("demo1")
        .join(&url["/media/".len()..]);
    assert_eq!(std::fs::read(&on_disk).expect("stored file"), png);

    // The owner downloads the same bytes; another tenant gets 404; no tenant gets 400.
    let own = server.get(&url, &DEMO1);
    assert_eq!(own.status, 200);
    assert_eq!(own.header("Content-Type"), Some("image/png"));
    assert_eq!(own.body, png);
    let other = server.get(&url, &DEMO2);
    assert_eq!(
        (other.status, other.json()),
        (404, json!({"detail": "Not found."}))
    );
    assert_eq!(server.get(&url, &[("Tenant-Header", "public")]).status, 404);
    assert_eq!(server.get(&url, &[]).status, 400);
    for bad in [
        "/media/../demo2/x.png",
        "/media/hotels/%2e%2e/x",
        "/media/.hidden",
        "/media/",
    ] {
        assert!(matches!(server.get(bad, &DEMO1).status, 400 | 404), "{bad}");
    }

    // The list shows the picture URL.
    assert_eq!(server.get("/hotels/", &DEMO1).json()[0]["picture"], url);

    // Every accepted format, detected from the content, not the name.
    for (format, ext) in [
        (ImageFormat::Jpeg, "jpg"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::WebP, "webp"),
    ] {
        let r = server.send(
            "POST",
            "/hotels/",
            &DEMO2,
            Some(upload("photo.png", &image_bytes(format))),
        );
        assert_eq!(r.status, 201, "{format:?}: {}", r.text());
        let url = r.json()["picture"].as_str().unwrap_or_default().to_owned();
        assert!(url.ends_with(&format!(".{ext}")), "{url}");
        assert_eq!(server.get(&url, &DEMO2).status, 200);
        assert_eq!(server.get(&url, &DEMO1).status, 404);
    }

    // Replacing the picture removes the old file; clearing it removes the new one.
    let gif = image_bytes(ImageFormat::Gif);
    let id = hotel["id"].as_i64().unwrap_or_default();
    let replaced = server.send(
        "PATCH",
        &format!("/hotels/{id}/"),
        &DEMO1,
        Some(Body::multipart(&[], &[("picture", "new.gif", &gif)])),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let new_url = replaced.json()["picture"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(new_url, url);
    assert_eq!(replaced.json()["name"], "Ritz");
    assert!(!on_disk.exists());
    assert_eq!(server.get(&url, &DEMO1).status, 404);
    assert_eq!(server.get(&new_url, &DEMO1).body, gif);
    let cleared = server.json(
        "PATCH",
        &format!("/hotels/{id}"),
        &DEMO1,
        json!({"picture": null}),
    );
    assert_eq!(cleared.json()["picture"], json!(null));
    assert_eq!(server.get(&new_url, &DEMO1).status, 404);

    // Deleting a hotel deletes its picture.
    let with_pic = server.send("POST", "/hotels", &DEMO1, Some(upload("x.png", &png)));
    let pic_url = with_pic.json()["picture"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pic_id = with_pic.json()["id"].as_i64().unwrap_or_default();
    assert_eq!(server.get(&pic_url, &DEMO1).status, 200);
    assert_eq!(
        server
            .send("DELETE", &format!("/hotels/{pic_id}/"), &DEMO1, None)
            .status,
        204
    );
    assert_eq!(server.get(&pic_url, &DEMO1).status, 404);

    // Multipart without a picture is fine too.
    let plain = server.send(
        "POST",
        "/hotels/",
        &DEMO1,
        Some(Body::multipart(
            &[("name", "A"), ("location", "B"), ("description", "C")],
            &[],
        )),
    );
    assert_eq!(
        (plain.status, plain.json()["picture"].clone()),
        (201, json!(null))
    );
}

#[test]
fn pictures_are_checked() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");
    let invalid = json!({"picture": [
        "Upload a valid image. The file you uploaded was either not an image or a corrupted image."
    ]});

    // Not images, whatever their names say.
    let mut truncated = image_bytes(ImageFormat::Png);
    truncated.truncate(truncated.len() / 2);
    let bmp = [b"BM".as_slice(), &[0u8; 64]].concat();
    for (name, bytes) in [
        ("fake.png", b"this is not an image".to_vec()),
        ("half.png", truncated),
        ("old.bmp", bmp),
        ("page.jpg", b"<html><body>hi</body></html>".to_vec()),
    ] {
        let r = server.send("POST", "/hotels/", &DEMO1, Some(upload(name, &bytes)));
        assert_eq!((r.status, r.json()), (400, invalid.clone()), "{name}");
    }
    let empty = server.send("POST", "/hotels/", &DEMO1, Some(upload("e.png", b"")));
    assert_eq!(empty.status, 400, "{}", empty.text());
    assert!(empty.json()["picture"].is_array());

    // A picture in JSON is not a file.
    let r = server.json(
        "POST",
        "/hotels/",
        &DEMO1,
        json!({"name": "a", "location": "b", "description": "c", "picture": "x.png"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["picture"][0],
        "The submitted data was not a file. Check the encoding type on the form."
    );

    // Over 5 MiB: 413, whether just over or far over the body limit.
    for size in [5 * 1024 * 1024 + 1, 7 * 1024 * 1024] {
        let mut big = image_bytes(ImageFormat::Png);
        big.resize(size, 0);
        let r = server.send("POST", "/hotels/", &DEMO1, Some(upload("big.png", &big)));
        assert_eq!(r.status, 413, "{size}: {}", r.text());
        assert!(r.json()["detail"].is_string());
    }

    // Nothing was stored or written by the failures.
    assert_eq!(server.get("/hotels/", &DEMO1).json(), json!([]));
    let dir = server.media_root().join("demo1").join("hotels");
    let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0);
}
