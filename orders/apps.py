from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders and catalog"

    def ready(self) -> None:
        from orders import handlers  # noqa: F401  (registers the event subscribers)
