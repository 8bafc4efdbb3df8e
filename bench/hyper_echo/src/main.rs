//! An echo server the way WasmEdge's examples write one today: hyper_wasi on
//! tokio_wasi. For comparison in `make bench` only.

#[cfg(target_os = "wasi")]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use hyper::server::conn::Http;
    use hyper::service::service_fn;
    use hyper::{Body, Request, Response};

    async fn echo(request: Request<Body>) -> Result<Response<Body>, hyper::Error> {
        let body = hyper::body::to_bytes(request.into_body()).await?;
        Ok(Response::new(Body::from(body)))
    }

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1234".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::task::spawn(async move {
            // One send per response: a head and a body in two sends wait on
            // the client's delayed ACK under Nagle (which a WasmEdge socket
            // cannot turn off), about 40 ms a request.
            let _ = Http::new()
                .http1_writev(false)
                .serve_connection(stream, service_fn(echo))
                .await;
        });
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("hyper_echo runs on wasm32-wasip1");
    std::process::exit(2);
}
