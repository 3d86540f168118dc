"""The bundled demo news site: real Vietnamese article pages plus a generated feed, sitemap and listing."""

from duluan.demo_site.server import DemoArticle, DemoSite, demo_articles, serve_demo_site

__all__ = ["DemoArticle", "DemoSite", "demo_articles", "serve_demo_site"]
