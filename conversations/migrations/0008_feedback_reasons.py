from django.db import migrations

REASONS = [
    ("inaccurate", "Inaccurate or made up", "不准确或编造", "down"),
    ("unhelpful", "Did not help", "没有帮助", "down"),
    ("incomplete", "Incomplete or cut off", "不完整或被截断", "down"),
    ("harmful", "Harmful or offensive", "有害或冒犯", "down"),
    ("refused", "Refused without reason", "无故拒绝回答", "down"),
    ("helpful", "Helpful", "有帮助", "up"),
    ("other", "Other", "其他", "any"),
]


def add_reasons(apps, schema_editor):
    FeedbackReason = apps.get_model("conversations", "FeedbackReason")
    for order, (code, label, label_zh, rating) in enumerate(REASONS):
        FeedbackReason.objects.get_or_create(
            code=code,
            defaults={"label": label, "label_zh": label_zh, "rating": rating, "order": order},
        )


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_review_and_feedback")]

    operations = [migrations.RunPython(add_reasons, migrations.RunPython.noop)]
