//! End-to-end for files and images in the chat client (issue 23): the real `rtm-tui` in
//! tmux on both ends. alice sends `/image` of a PNG and `/file` of a 20 MB log; bob sees the
//! picture (half blocks: tmux answers the graphics query with no kitty, sixel or cell
//! size), saves the file with `/save` and the bytes match; on one server and across two
//! nodes. A hostile image goes as a file with a clear note; Esc cancels an upload and a
//! download (through a slow link, so that they last long enough).

use std::path::{Path, PathBuf};

use crate::support;
use crate::support::slow_proxy::SlowProxy;
use crate::support::tmux::Tmux;

/// Half-block cells a picture of the test's PNG fills at least (8 to 12 rows of the
/// 30-row pane, 20 to 32 columns each, by the cell size tmux reports).
const MIN_PICTURE_CELLS: usize = 100;

/// A `width` x `height` colour gradient as PNG, written to `dir/name`.
fn write_png(dir: &Path, name: &str, width: u32, height: u32) -> PathBuf {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 180])
    });
    let path = dir.join(name);
    image::DynamicImage::ImageRgb8(picture)
        .save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    path
}

/// `size` bytes no compression shrinks (xorshift), written to `dir/name`.
fn write_noise(dir: &Path, name: &str, size: usize) -> (PathBuf, Vec<u8>) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// A PNG whose header claims 100000x100000 pixels over a little data (a fixture): what a
/// decompression bomb looks like to a decoder that trusts headers.
fn write_bomb(dir: &Path) -> PathBuf {
    let bomb = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bomb-100000x100000.png"
    );
    let path = dir.join("bomb.png");
    std::fs::copy(bomb, &path).unwrap();
    path
}

/// Picture cells on the screen: the half blocks ratatui-image draws.
fn picture_cells(screen: &str) -> usize {
    screen.matches(['▀', '▄']).count()
}

/// alice (already in her @bob tab) sends the picture and the 20 MB file; bob sees both,
/// the picture drawn, saves the file, and the bytes are alice's.
fn image_and_file_reach_bob(alice: &Tmux, bob: &Tmux) {
    let files = Path::new(&alice.home_path);
    let png = write_png(files, "shot.png", 320, 240);
    alice.line(&format!("/image {}", png.display()));
    alice.wait_until("the image sent", |s| {
        s.contains("[image shot.png, 320×240,") && s.contains("(/save) ✓")
    });
    bob.wait_for("@alice");
    bob.keys(&["M-2"]);
    let screen = bob.wait_until("the picture in half blocks", |s| {
        s.contains("[image shot.png, 320×240,") && picture_cells(s) >= MIN_PICTURE_CELLS
    });
    // The graphics query left nothing on the screen (kitty's answer, escape debris).
    assert!(
        !screen.contains("Gi=") && !screen.contains("^["),
        "{screen}"
    );

    let (log, data) = write_noise(files, "app.log", 20 * 1024 * 1024);
    alice.line(&format!("/file {}", log.display()));
    alice.wait_for("[file app.log, 20.0 MiB] (/save) ✓");
    bob.wait_for("[file app.log, 20.0 MiB] (/save)");
    bob.line("/save");
    // No downloads directory in the test's home: the home directory itself.
    let saved = Path::new(&bob.home_path).join("app.log");
    bob.wait_for(&format!("saved app.log (20.0 MiB) to {}", saved.display()));
    let got = std::fs::read(&saved).unwrap();
    assert!(got == data, "the saved file differs ({} bytes)", got.len());
    // The picture is still drawn above, as the scrollback moved on.
    bob.wait_until("the picture still there", |s| {
        picture_cells(s) >= MIN_PICTURE_CELLS
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_sends_an_image_and_a_20_mb_file_and_bob_saves_it() {
    let server = support::start_server(support::test_config()).await;
    let url = server.url();
    let (alice, bob) = Tmux::alice_and_bob("media", &url, &url);
    alice.line("/query bob");
    image_and_file_reach_bob(&alice, &bob);

    // A hostile image goes as a file, with a note saying why; the client goes on.
    let bomb = write_bomb(Path::new(&alice.home_path));
    alice.line(&format!("/image {}", bomb.display()));
    alice.wait_until("the note on the hostile image", |s| {
        s.contains("bomb.png is an image of 100000x100000 pixels, over the 16384x16384")
            && s.contains("this client decodes: sending it as a file")
    });
    alice.wait_for("[file bomb.png,");
    bob.wait_for("[file bomb.png,");
    alice.line("still here");
    alice.wait_for("still here ✓");

    alice.quit();
    bob.quit();
    drop((alice, bob));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_cancels_an_upload_and_a_download_under_way() {
    let server = support::start_server(support::test_config()).await;
    // 2 MB/s each way: a 20 MB upload takes 10 s, a 6 MB download 3 s.
    let proxy = SlowProxy::start(&server.url(), 2 * 1024 * 1024).await;
    let (alice, bob) = Tmux::alice_and_bob("media-cancel", &proxy.url(), &proxy.url());
    alice.line("/query bob");
    let files = Path::new(&alice.home_path);
    let (big, _) = write_noise(files, "big.bin", 20 * 1024 * 1024);
    alice.line(&format!("/file {}", big.display()));
    alice.wait_until("the upload's progress", |s| {
        s.contains("⇡ big.bin [") && s.contains("% ") && s.contains("Esc cancels")
    });
    alice.keys(&["Escape"]);
    let screen = alice.wait_for("upload of big.bin cancelled");
    assert!(!screen.contains("[file big.bin"), "{screen}");

    // bob cancels the download of a file that did arrive: nothing is left of it.
    let (log, _) = write_noise(files, "app.log", 6 * 1024 * 1024);
    alice.line(&format!("/file {}", log.display()));
    alice.wait_for("[file app.log, 6.0 MiB] (/save) ✓");
    bob.wait_for("@alice");
    bob.keys(&["M-2"]);
    bob.wait_for("[file app.log, 6.0 MiB] (/save)");
    bob.line("/save");
    bob.wait_until("the download's progress", |s| {
        s.contains("⇣ app.log [") && s.contains("Esc cancels")
    });
    bob.keys(&["Escape"]);
    bob.wait_for("download of app.log cancelled");
    let left: Vec<String> = std::fs::read_dir(&bob.home_path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("app.log"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Both go on.
    alice.line("/ping");
    alice.wait_for("pong from the server");
    bob.line("/ping");
    bob.wait_for("pong from the server");
    alice.quit();
    bob.quit();
    drop((alice, bob));
    drop(proxy);
    server.shutdown().await;
}

/// The same across two nodes on one Redis: the media id works on the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_and_file_across_two_nodes() {
    let cluster = support::cluster::Cluster::start(2).await;
    let (alice, bob) = Tmux::alice_and_bob("media-node", &cluster.url(0), &cluster.url(1));
    alice.line("/query bob");
    image_and_file_reach_bob(&alice, &bob);
    alice.quit();
    bob.quit();
}
