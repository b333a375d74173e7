"""The fictional fund range, site map and reference lists the synthetic data draws from."""

from __future__ import annotations

SITE = "https://advisors.northwind-funds.example"

TOPICS = ("esg", "retirement", "fixed_income", "equity_growth", "alternatives", "tax_planning")

# ticker, name, asset class, topic
FUNDS: tuple[tuple[str, str, str, str], ...] = (
    ("NWESX", "Northwind ESG Leaders Equity", "equity", "esg"),
    ("NWGBX", "Northwind Green Bond", "fixed_income", "esg"),
    ("NWCLX", "Northwind Climate Transition", "equity", "esg"),
    ("NWRTX", "Northwind Retirement 2040", "multi_asset", "retirement"),
    ("NWRIX", "Northwind Retirement Income", "multi_asset", "retirement"),
    ("NWTDX", "Northwind Target Date 2055", "multi_asset", "retirement"),
    ("NWCBX", "Northwind Core Bond", "fixed_income", "fixed_income"),
    ("NWHYX", "Northwind High Yield", "fixed_income", "fixed_income"),
    ("NWSTX", "Northwind Short Duration Treasury", "fixed_income", "fixed_income"),
    ("NWLGX", "Northwind Large Cap Growth", "equity", "equity_growth"),
    ("NWSCX", "Northwind Small Cap Value", "equity", "equity_growth"),
    ("NWINX", "Northwind International Equity", "equity", "equity_growth"),
    ("NWRAX", "Northwind Real Assets", "alternatives", "alternatives"),
    ("NWLSX", "Northwind Long/Short Equity", "alternatives", "alternatives"),
    ("NWPCX", "Northwind Private Credit Interval", "alternatives", "alternatives"),
    ("NWMUX", "Northwind Municipal Bond", "fixed_income", "tax_planning"),
    ("NWTMX", "Northwind Tax-Managed Equity", "equity", "tax_planning"),
    ("NWTEX", "Northwind Tax-Exempt Income", "fixed_income", "tax_planning"),
)

INSIGHT_PAGES = {
    "esg": ("insights/esg-investing-outlook", "insights/stewardship-report"),
    "retirement": ("insights/retirement-income-planning", "tools/retirement-calculator"),
    "fixed_income": ("insights/rates-outlook", "insights/credit-market-update"),
    "equity_growth": ("insights/equity-market-outlook", "insights/growth-vs-value"),
    "alternatives": ("insights/alternatives-in-portfolios", "insights/private-credit-primer"),
    "tax_planning": ("insights/year-end-tax-planning", "tools/tax-equivalent-yield"),
}

GENERIC_PAGES = ("", "funds", "insights", "events", "contact", "account/dashboard", "pricing")

REFERRERS = (
    ("", 0.35),
    ("https://www.google.com/", 0.25),
    ("https://www.bing.com/", 0.05),
    ("https://www.linkedin.com/feed/", 0.1),
    ("https://mail.example-advisor-mail.example/", 0.1),
    (SITE + "/insights", 0.1),
    ("https://news.example-finance-news.example/markets", 0.05),
)

UTM = (
    None,
    None,
    None,
    ("newsletter", "email", "monthly-insights"),
    ("linkedin", "social", "esg-campaign"),
    ("google", "cpc", "retirement-income"),
    ("partner", "referral", "platform-launch"),
)

BROWSER_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)

CRAWLER_UAS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "python-requests/2.32.3",
)

FIRMS = (
    ("Harborview Wealth", "ria"),
    ("Summit Ridge Advisors", "ria"),
    ("Granite Peak Securities", "wirehouse"),
    ("Meridian Capital Markets", "wirehouse"),
    ("Lakeshore Financial Network", "ibd"),
    ("Pioneer Independent Brokers", "ibd"),
    ("First Prairie Bank Wealth", "bank"),
    ("Coastal Trust Private Bank", "bank"),
)

REGIONS = ("northeast", "southeast", "midwest", "southwest", "west")
AUM_BANDS = ("<50M", "50-150M", "150-500M", "500M-1B", ">1B")
FIRST_NAMES = (
    "James",
    "Maria",
    "Robert",
    "Linda",
    "Michael",
    "Patricia",
    "David",
    "Jennifer",
    "Daniel",
    "Aisha",
    "Wei",
    "Priya",
    "Carlos",
    "Olga",
    "Kwame",
    "Sofia",
    "Hiroshi",
    "Fatima",
    "Liam",
    "Grace",
)
LAST_NAMES = (
    "Smith",
    "Garcia",
    "Johnson",
    "Nguyen",
    "Brown",
    "Patel",
    "Okafor",
    "Kowalski",
    "Chen",
    "Rossi",
    "Schmidt",
    "Haddad",
    "Silva",
    "Tanaka",
    "Murphy",
    "Novak",
    "Larsen",
    "Cohen",
    "Dubois",
    "Ivanova",
)
NOTE_AUTHORS = ("Jordan Wholesaler", "Casey Internal", "Riley Territory", "Morgan Key-Accounts")
