from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders and catalog"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from orders import handlers  # noqa: F401  (registers the event subscribers)
        from orders.models import Product, ShippingZone, TaxRate
        from orders.selectors import checkout_caches_clear

        # The API checkout's per-process caches (orders.selectors): an edit made in this process
        # (the admin, a test) is seen at once; other processes see it within the cache's TTL.
        def clear(**_kwargs):
            checkout_caches_clear()

        for model in (Product, TaxRate, ShippingZone):
            post_save.connect(clear, sender=model, weak=False, dispatch_uid=f"cache-{model}")
            post_delete.connect(clear, sender=model, weak=False, dispatch_uid=f"cache-d-{model}")
