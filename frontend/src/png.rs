//! PNG export: the browser rasterises a chart's SVG onto a canvas (at 2× for
//! sharpness) and downloads the canvas as PNG.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

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
            canvas.set_height(h * 2);
            let ctx: web_sys::CanvasRenderingContext2d = canvas
                .get_context("2d")?
                .ok_or("no 2d context")?
                .dyn_into()?;
            ctx.set_fill_style_str("white");
            ctx.fill_rect(0.0, 0.0, (w * 2) as f64, (h * 2) as f64);
            ctx.scale(2.0, 2.0)?;
            ctx.draw_image_with_html_image_element(&img2, 0.0, 0.0)?;
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
