"""PricingService over the network from Python's grpcio, against `harsha up
--demo`: a quote that explains every rule (the customer's profile comes from
the Customer service), applying a quote once, the effectiveness report,
field-named errors, and a new rule reported against the rules it overlaps
and used by the very next quote."""

import datetime
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.type import date_pb2

from harsha.pricing.v1 import pricing_pb2 as pb
from wire import dec, violations


def at(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.datetime.fromisoformat(text))
    return stamp


# Noon in Kolkata on 2 December 2026: no evening window, no festival.
NOON = "2026-12-02T06:30:00+00:00"


def quote(stub, customer="CUST-0002", channel="MOBILE-APP", when=NOON, lines=(("KAJU-KATLI", "12"), ("DARK-CHOC-70", "3"))):
    request = pb.QuotePriceRequest(
        customer=customer,
        channel=channel,
        price_time=at(when),
        lines=[pb.QuoteLineRequest(item_code=item, qty=dec(qty)) for item, qty in lines],
    )
    return stub.QuotePrice(request).quote


def test_a_quote_explains_every_rule(pricing_stub):
    q = quote(pricing_stub)
    kaju, choc = q.lines
    # A wholesale customer is priced from the WHOLESALE list where it has the item.
    assert (kaju.price_list, kaju.base_rate.value, kaju.gross_amount.value) == ("WHOLESALE", "1020", "12240")
    assert choc.price_list == "Standard Selling"
    assert [r.rule_code for r in kaju.applied_rules] == ["TRADE-BULK", "APP-LAUNCH", "CART-5000"]
    trade, app, cart = kaju.applied_rules
    assert (trade.tier_min.value, trade.line_discount.value) == ("10", "612")
    assert app.capped and app.line_discount.value == "100"
    assert cart.line_discount.value == "230.56"
    assert kaju.net_amount.value == "11297.44"
    skipped = {s.rule_code: s.reason for s in kaju.skipped_rules}
    assert skipped["EVENING-FRESH"] == pb.SKIP_REASON_OUTSIDE_TIME_WINDOW
    assert skipped["DIWALI-GIFTING"] == pb.SKIP_REASON_OUTSIDE_FESTIVAL
    assert skipped["CORPORATE-MITHAI"] == pb.SKIP_REASON_SEGMENT_MISMATCH
    assert {s.rule_code: s.reason for s in choc.skipped_rules}["CHRISTMAS-CHOC"] == pb.SKIP_REASON_OUTSIDE_FESTIVAL
    assert choc.net_amount.value == "418.95"
    assert q.total.value == "11716.39"
    assert q.subtotal.value == "12690"
    assert q.stacking == pb.STACKING_COMPOUND


def test_festival_and_evening_rules_apply_in_their_windows(pricing_stub):
    # 21:00 in Kolkata during Diwali 2026: the evening discount and Diwali apply.
    q = quote(pricing_stub, customer="CUST-0001", channel="", when="2026-11-08T15:30:00+00:00",
              lines=(("MYSORE-PAK", "1"),))
    assert [r.rule_code for r in q.lines[0].applied_rules] == ["DIWALI-GIFTING", "EVENING-FRESH"]
    assert q.lines[0].net_amount.value == "576", "800 × 0.9 × 0.8"


def test_applying_a_quote_is_idempotent_and_audited(pricing_stub):
    # A quote for another time is a what-if: kept, but it cannot be applied.
    what_if = quote(pricing_stub)
    with pytest.raises(grpc.RpcError) as refused:
        pricing_stub.ApplyQuote(pb.ApplyQuoteRequest(quote_id=what_if.quote_id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    q = pricing_stub.QuotePrice(pb.QuotePriceRequest(
        customer="CUST-0002", channel="MOBILE-APP",
        lines=[pb.QuoteLineRequest(item_code="KAJU-KATLI", qty=dec("12"))],
    )).quote
    order = f"SO-{uuid.uuid4().hex[:8]}"
    first = pricing_stub.ApplyQuote(pb.ApplyQuoteRequest(quote_id=q.quote_id, order_reference=order))
    again = pricing_stub.ApplyQuote(pb.ApplyQuoteRequest(quote_id=q.quote_id, order_reference=order))
    assert first.quote.status == pb.QUOTE_STATUS_APPLIED
    assert [a.application_id for a in first.applications] == [a.application_id for a in again.applications]
    # What each rule took off adds up to the line's discount (rounded once).
    assert {a.rule_code for a in first.applications} <= {r.rule_code for r in q.lines[0].applied_rules}
    assert "TRADE-BULK" in {a.rule_code for a in first.applications}
    taken = sum(float(a.discount_amount.value) for a in first.applications)
    assert abs(taken - float(q.lines[0].discount_amount.value)) < 0.005
    kept = pricing_stub.GetQuote(pb.GetQuoteRequest(quote_id=q.quote_id)).quote
    assert kept.total.value == q.total.value and kept.order_reference == order
    with pytest.raises(grpc.RpcError) as other_order:
        pricing_stub.ApplyQuote(pb.ApplyQuoteRequest(quote_id=q.quote_id, order_reference="SO-OTHER"))
    assert other_order.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    report = pricing_stub.GetRuleEffectiveness(pb.GetRuleEffectivenessRequest(rule_code="TRADE-BULK"))
    assert report.rules[0].usage_count >= 1
    assert report.rules[0].total_discount.value != "0"


def test_bad_input_is_invalid_argument_naming_the_field(pricing_stub):
    bad_quotes = {
        "lines[0].item_code": pb.QuotePriceRequest(customer="CUST-0001", lines=[pb.QuoteLineRequest(item_code="GHOST", qty=dec("1"))]),
        "lines[0].qty": pb.QuotePriceRequest(customer="CUST-0001", lines=[pb.QuoteLineRequest(item_code="KAJU-KATLI", qty=dec("0"))]),
        "customer": pb.QuotePriceRequest(customer="CUST-9999", lines=[pb.QuoteLineRequest(item_code="KAJU-KATLI", qty=dec("1"))]),
        "lines": pb.QuotePriceRequest(customer="CUST-0001"),
    }
    for field, request in bad_quotes.items():
        with pytest.raises(grpc.RpcError) as bad:
            pricing_stub.QuotePrice(request)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in violations(bad.value), (field, violations(bad.value))

    def rule(**overrides):
        fields = dict(code=f"BAD-{uuid.uuid4().hex[:6]}", rule_name="Bad", priority=1,
                      discount=pb.Discount(kind=pb.DISCOUNT_KIND_PERCENTAGE, value=dec("10")))
        fields.update(overrides)
        return pb.PricingRule(**fields)

    from google.type import timeofday_pb2
    nine = timeofday_pb2.TimeOfDay(hours=9)
    tier = lambda lo, hi, p: pb.PricingTier(min=dec(lo), max=dec(hi) if hi else None,
                                            discount=pb.Discount(kind=pb.DISCOUNT_KIND_PERCENTAGE, value=dec(p)))
    bad_rules = {
        "rule.discount.value": rule(discount=pb.Discount(kind=pb.DISCOUNT_KIND_PERCENTAGE, value=dec("120"))),
        "rule.window_end": rule(window_start=nine, window_end=nine),
        "rule.time_zone": rule(time_zone="Mars/Olympus"),
        "rule.tiers[1]": rule(discount=None, tier_basis=pb.TIER_BASIS_QUANTITY,
                              tiers=[tier("10", "60", "5"), tier("50", None, "8")]),
        "rule.valid_to": rule(valid_from=date_pb2.Date(year=2027, month=1, day=2),
                              valid_to=date_pb2.Date(year=2027, month=1, day=1)),
        "rule.min_qty": rule(min_qty=dec("-1")),
        "rule.targets[0].item_code": rule(targets=[pb.RuleTarget(item_code="GHOST")]),
    }
    for field, bad_rule in bad_rules.items():
        with pytest.raises(grpc.RpcError) as bad:
            pricing_stub.CreateRule(pb.CreateRuleRequest(rule=bad_rule))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in violations(bad.value), (field, violations(bad.value))


def test_a_new_rule_reports_its_overlaps_and_prices_at_once(pricing_stub):
    code = f"MITHAI-{uuid.uuid4().hex[:6]}".upper()
    created = pricing_stub.CreateRule(pb.CreateRuleRequest(rule=pb.PricingRule(
        code=code, rule_name="Test mithai promotion", priority=20,
        targets=[pb.RuleTarget(item_group="Mithai")],
        discount=pb.Discount(kind=pb.DISCOUNT_KIND_AMOUNT_OFF, value=dec("50")),
        customer_segments=["RETAIL"],
    )))
    overlaps = {o.rule_code: o.tie for o in created.overlaps}
    assert overlaps.get("EVENING-FRESH") is True, overlaps
    assert "CART-5000" in overlaps and not overlaps["CART-5000"]
    priced = quote(pricing_stub, customer="CUST-0001", channel="", lines=(("MYSORE-PAK", "2"),))
    assert code in [r.rule_code for r in priced.lines[0].applied_rules]
    assert priced.lines[0].net_amount.value == "1500", "(800 − 50) × 2"
    pricing_stub.DeactivateRule(pb.DeactivateRuleRequest(code=code))
    again = quote(pricing_stub, customer="CUST-0001", channel="", lines=(("MYSORE-PAK", "2"),))
    assert code not in [r.rule_code for r in again.lines[0].applied_rules]
