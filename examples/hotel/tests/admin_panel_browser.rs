//! The admin panel in headless Chromium, driven over WebDriver (chromedriver on a free
//! loopback port): the seed's Django-admin workflow end to end.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them); the test
//! fails, never skips, when they are missing. `CHROMEDRIVER` and `CHROMIUM` override
//! the paths. A screenshot of the tenants page is left at
//! `$CARGO_TARGET_TMPDIR/admin_tenants.png`.

mod support;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{Http, Options, Server, TempDir, TOKEN};

/// How long any one page change may take to show (a bound, not an expectation).
const WAIT: Duration = Duration::from_secs(20);

fn tool(env: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.exists(),
        "{} is missing: install it with `apt-get install chromium chromium-driver` \
         (scripts/test does), or set {env}",
        path.display()
    );
    path
}

/// chromedriver in its own process group, so that dropping this kills it and every
/// Chromium process it started, also when the test fails.
struct Driver {
    child: Child,
    port: u16,
    scratch: TempDir,
}

impl Driver {
    fn start() -> Driver {
        let chromedriver = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
        let scratch = TempDir::new("chromium");
        let log = std::fs::File::create(scratch.0.join("chromedriver.log")).expect("driver log");
        let port = support::free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let mut driver = Driver {
            child,
            port,
            scratch,
        };
        driver.wait_ready();
        driver
    }

    /// Polls until chromedriver accepts connections (it listens once it is ready).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("chromedriver.log")).unwrap_or_default()
    }

    /// A headless Chromium session with the flags CI asks for.
    async fn session(&self) -> Client {
        let chromium = tool("CHROMIUM", "/usr/bin/chromium");
        let profile = self.scratch.0.join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,860",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("start Chromium: {e}\n{}", self.log()))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser processes it spawned.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page under test, with waits instead of sleeps.
struct Page<'a> {
    client: &'a Client,
    base: String,
}

impl Page<'_> {
    async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client.goto(&url).await.expect("navigate");
    }

    async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// Waits for the confirmation a form leaves after its redirect.
    async fn wait_for_flash(&self, text: &str) {
        let xpath = format!("//p[contains(@class, 'flash') and contains(., '{text}')]");
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no message `{text}`: {e}"));
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.expect("click");
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.expect("text")
    }

    async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .len()
    }
}

/// Keeps a screenshot of the page as a test artifact under the target directory.
async fn screenshot(page: &Page<'_>, name: &str) {
    let png = page.client.screenshot().await.expect("screenshot");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());
}

fn write_picture(dir: &Path) -> PathBuf {
    let path = dir.join("ritz.png");
    let mut out = std::io::Cursor::new(Vec::new());
    let img = image::RgbImage::from_fn(320, 200, |x, y| {
        image::Rgb([(x * 255 / 320) as u8, (y * 255 / 200) as u8, 160])
    });
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    std::fs::write(&path, out.into_inner()).expect("write picture");
    path
}

#[test]
fn admin_panel_in_chromium() {
    // Drop order (reverse of declaration): browser, service, then the database.
    let db = support::test_database();
    let server = Server::start(&db, Options::default());
    let driver = Driver::start();
    let picture = write_picture(&driver.scratch.0);
    let runtime = rocket::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = driver.session().await;
        let page = Page {
            client: &client,
            base: format!("http://127.0.0.1:{}", server.port),
        };
        flow(&page, &server, &picture).await;
        client.close().await.expect("close the browser");
    });
}

async fn flow(page: &Page<'_>, server: &Server, picture: &Path) {
    // 1. Log in: /admin shows the login form first.
    page.open("/admin").await;
    page.fill("#token", "not the token").await;
    page.click("#login button[type=submit]").await;
    assert_eq!(page.text("p.error").await, "That token is not right.");
    page.fill("#token", TOKEN).await;
    page.click("#login button[type=submit]").await;
    page.wait_for("#new-tenant").await;
    assert!(page.text("p.empty").await.contains("No tenants yet"));

    // 2. Create demo1 and demo2; a mistake is reported next to its field.
    for name in ["demo1", "demo2"] {
        page.fill("#new-tenant #name", name).await;
        page.click("#new-tenant button[type=submit]").await;
        page.wait_for_flash(&format!("Tenant “{name}” created"))
            .await;
    }
    page.fill("#new-tenant #name", "public").await;
    page.click("#new-tenant button[type=submit]").await;
    let error = page.text("#new-tenant p.error").await;
    assert!(
        error.contains("`public` names the public schema"),
        "{error}"
    );
    assert_eq!(page.count("#tenants tbody tr").await, 2);

    // 3. Add a domain to demo1, then make it the primary one.
    page.click("#tenants a[href='/admin/tenants/demo1']").await;
    page.wait_for("#no-domains").await;
    page.fill("#add-domain #domain", "demo1.localhost").await;
    page.click("#add-domain button[type=submit]").await;
    page.wait_for_flash("Domain demo1.localhost added").await;
    page.click("#domains button.secondary:not(.danger)").await;
    page.wait_for_flash("is now the primary domain").await;
    assert_eq!(page.text("#domains .badge").await, "primary");

    // 4. A hotel with a picture in demo1, shown with its thumbnail.
    page.click("#add-hotel").await;
    page.fill("#hotel-form #name", "Ritz").await;
    page.fill("#hotel-form #location", "Paris").await;
    page.fill(
        "#hotel-form #description",
        "Grand hotel on the SchemaRef Vendôme",
    )
    .await;
    let file = page.wait_for("#hotel-form #picture").await;
    file.send_keys(&picture.display().to_string())
        .await
        .expect("choose the picture");
    page.click("#hotel-form button[type=submit]").await;
    page.wait_for_flash("Hotel “Ritz” added to “demo1”").await;
    let thumb = page.wait_for("#hotels td.thumb img").await;
    let loaded = page
        .client
        .execute(
            "const img = arguments[0]; return img.complete && img.naturalWidth;",
            vec![serde_json::to_value(&thumb).expect("element reference")],
        )
        .await
        .expect("read the thumbnail's size");
    assert_eq!(loaded, json!(160), "the thumbnail is a 160×100 PNG");
    screenshot(page, "admin_tenant.png").await;

    // Editing shows the stored picture; a blanked field is reported and nothing saved.
    page.click("#hotels a").await;
    page.wait_for("#hotel-form .current img").await;
    page.fill("#hotel-form #location", " ").await;
    page.click("#hotel-form button[type=submit]").await;
    let error = page.text("#hotel-form p.error").await;
    assert_eq!(error, "This field may not be blank.");
    screenshot(page, "admin_hotel.png").await;
    page.click("#hotel-form .buttons a").await;
    page.wait_for("#hotels").await;
    assert!(page.text("#hotels").await.contains("Paris"));

    // The tenants page: schema, domains and hotel counts; keep a screenshot of it.
    page.open("/admin").await;
    let demo1 = page.text("#tenants tr[data-schema=demo1]").await;
    assert!(demo1.contains("demo1.localhost"), "{demo1}");
    assert_eq!(
        page.text("#tenants tr[data-schema=demo1] td.hotels").await,
        "1"
    );
    assert_eq!(
        page.text("#tenants tr[data-schema=demo2] td.hotels").await,
        "0"
    );
    screenshot(page, "admin_tenants.png").await;

    // 5. demo2 shows no hotels.
    page.click("#tenants a[href='/admin/tenants/demo2']").await;
    page.wait_for("#no-hotels").await;
    assert_eq!(page.count("#hotels").await, 0);

    // Deleting goes through a confirmation page whose drop-schema box starts unticked.
    page.click("#delete-tenant").await;
    let drop_schema = page.wait_for("#drop_schema").await;
    assert!(!drop_schema.is_selected().await.expect("checkbox state"));
    page.click("#confirm-delete button[type=submit]").await;
    page.wait_for_flash("Its schema demo2 and its data were kept")
        .await;
    assert_eq!(page.count("#tenants tbody tr").await, 1);

    // 6. Log out: back to the login page, and the pages are closed again.
    page.click("#logout").await;
    page.wait_for("#login").await;
    page.open("/admin/tenants/demo1").await;
    page.wait_for("#login").await;

    // What the browser did is what the API sees.
    let demo1 = server.get("/hotels/", &[("Tenant-Header", "demo1")]).json();
    assert_eq!(demo1[0]["name"], "Ritz");
    let url = demo1[0]["picture"].as_str().expect("a picture URL");
    let served = server.get(url, &[("Host", "demo1.localhost")]);
    assert_eq!(served.status, 200, "the picture, by the new domain");
    let gone = server.get("/hotels/", &[("Tenant-Header", "demo2")]);
    assert_eq!(gone.status, 400, "demo2 is deleted");
}
