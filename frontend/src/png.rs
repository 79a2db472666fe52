//! PNG export: the browser rasterises a chart's SVG onto a canvas (at 2× for
//! sharpness), adds a caption line saying what it shows (the answer, the
//! model, the permalink: a picture in a slide or a paper keeps its source),
//! and downloads the canvas as PNG.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Height of the caption line, in CSS pixels.
const CAPTION: u32 = 22;

/// What the chart shows: the page's answer and model, and its permalink (the
/// address without its fields when it is one, the whole address otherwise).
fn caption(document: &web_sys::Document) -> String {
    let value = |id: &str| -> String {
        let el = document.get_element_by_id(id);
        el.clone()
            .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
            .map(|e| e.value())
            .or_else(|| {
                el.and_then(|e| e.dyn_into::<web_sys::HtmlSelectElement>().ok())
                    .map(|e| e.value())
            })
            .unwrap_or_default()
    };
    let location = document.location();
    let link = location
        .as_ref()
        .and_then(|l| {
            let path = l.pathname().ok()?;
            if path.starts_with("/r/") {
                Some(format!("{}{path}", l.origin().ok()?))
            } else {
                l.href().ok()
            }
        })
        .unwrap_or_default();
    let model = value("model");
    let model = model.rsplit('/').next().unwrap_or_default();
    format!(
        "Answer {:?} · model {model} · {link}",
        value("target").trim()
    )
}

/// The caption under the chart, in a font small enough to fit its width.
fn draw_caption(
    ctx: &web_sys::CanvasRenderingContext2d,
    text: &str,
    w: f64,
    h: f64,
) -> Result<(), JsValue> {
    let mut size = 12.0;
    loop {
        ctx.set_font(&format!("{size}px sans-serif"));
        if size <= 6.0 || ctx.measure_text(text)?.width() <= w - 12.0 {
            break;
        }
        size -= 0.5;
    }
    ctx.set_fill_style_str("#444");
    ctx.fill_text(text, 6.0, h + f64::from(CAPTION) - 7.0)
}

pub fn download_png(svg: &str, file: &str) -> Result<(), String> {
    let err = |e: JsValue| format!("PNG export failed: {e:?}");
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let img: web_sys::HtmlImageElement = document
        .create_element("img")
        .map_err(err)?
        .dyn_into()
        .map_err(|_| "not an image")?;
    let src = format!(
        "data:image/svg+xml;charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(svg))
    );
    let file = file.to_string();
    let img2 = img.clone();
    let onload = Closure::once(move || {
        let run = || -> Result<(), JsValue> {
            let document = web_sys::window()
                .and_then(|w| w.document())
                .ok_or("no document")?;
            let canvas: web_sys::HtmlCanvasElement =
                document.create_element("canvas")?.dyn_into()?;
            let (w, h) = (img2.natural_width().max(1), img2.natural_height().max(1));
            canvas.set_width(w * 2);
            canvas.set_height((h + CAPTION) * 2);
            let ctx: web_sys::CanvasRenderingContext2d = canvas
                .get_context("2d")?
                .ok_or("no 2d context")?
                .dyn_into()?;
            ctx.set_fill_style_str("white");
            ctx.fill_rect(0.0, 0.0, (w * 2) as f64, ((h + CAPTION) * 2) as f64);
            ctx.scale(2.0, 2.0)?;
            ctx.draw_image_with_html_image_element(&img2, 0.0, 0.0)?;
            draw_caption(&ctx, &caption(&document), f64::from(w), f64::from(h))?;
            let url = canvas.to_data_url_with_type("image/png")?;
            let a: web_sys::HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
            a.set_href(&url);
            a.set_download(&file);
            a.click();
            Ok(())
        };
        if let Err(e) = run() {
            web_sys::console::error_1(&e);
        }
    });
    img.set_onload(Some(onload.as_ref().unchecked_ref()));
    onload.forget();
    img.set_src(&src);
    Ok(())
}
