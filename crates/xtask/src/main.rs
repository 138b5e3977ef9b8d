//! Developer tasks that are code, not shell: `cargo run -p xtask -- icons`.
//!
//! `icons` reads `icons/source.png` (square RGBA, at least 512 px) and writes
//! what the Tauri bundler and the tray need: `32x32.png`, `64x64.png` (the
//! tray badge's base), `128x128.png`, `128x128@2x.png`, `icon.png` (512 px),
//! `icon.ico` (16–256 px) and `icon.icns` (PNG-encoded entries, 16–1024 px).

use anyhow::{Context, bail};
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbaImage};
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("icons") => icons(&workspace_root().join("icons")),
        _ => bail!("usage: cargo run -p xtask -- icons"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn resized(src: &RgbaImage, size: u32) -> RgbaImage {
    image::imageops::resize(src, size, size, FilterType::Lanczos3)
}

fn png_bytes(img: &RgbaImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(img.clone()).write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

fn icons(dir: &Path) -> anyhow::Result<()> {
    let source = dir.join("source.png");
    let src = image::open(&source).with_context(|| format!("reading {}", source.display()))?.to_rgba8();
    if src.width() != src.height() || src.width() < 512 {
        bail!("{} must be square and at least 512 px, it is {}x{}", source.display(), src.width(), src.height());
    }
    for (name, size) in
        [("32x32.png", 32), ("64x64.png", 64), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]
    {
        let path = dir.join(name);
        std::fs::write(&path, png_bytes(&resized(&src, size))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    // ICO: one PNG per size.
    let frames = [16, 24, 32, 48, 64, 256]
        .iter()
        .map(|&s| {
            let img = resized(&src, s);
            image::codecs::ico::IcoFrame::as_png(img.as_raw(), s, s, image::ExtendedColorType::Rgba8)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ico = dir.join("icon.ico");
    let mut file = std::fs::File::create(&ico)?;
    image::codecs::ico::IcoEncoder::new(&mut file).encode_images(&frames)?;
    println!("wrote {}", ico.display());
    // ICNS: 'icns' + total length, then entries of (type, length incl. 8-byte header, PNG data).
    let mut body = Vec::new();
    for (kind, size) in
        [(b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256), (b"ic09", 512), (b"ic10", 1024)]
    {
        let png = png_bytes(&resized(&src, size))?;
        body.extend_from_slice(kind);
        body.extend_from_slice(&u32::try_from(png.len() + 8)?.to_be_bytes());
        body.extend_from_slice(&png);
    }
    let mut icns = b"icns".to_vec();
    icns.extend_from_slice(&u32::try_from(body.len() + 8)?.to_be_bytes());
    icns.extend_from_slice(&body);
    std::fs::write(dir.join("icon.icns"), icns)?;
    println!("wrote {}", dir.join("icon.icns").display());
    Ok(())
}
