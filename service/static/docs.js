// Starts Swagger UI on /docs. A file rather than an inline script: the pages' security policy
// allows scripts from this server only.
window.addEventListener("load", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.specUrl, domNode: root, deepLinking: true });
});
