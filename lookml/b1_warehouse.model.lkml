# Starter LookML model for the SAP Business One warehouse (PostgreSQL schema sap_b1).
# Set `connection` to the name of your Looker connection to the warehouse database.
connection: "b1_warehouse"

include: "/views/*.view.lkml"

# Triggered by the looker_refresh Airflow DAG after every warehouse load
# (LookerTriggerDatagroupOperator); the sql_trigger is a fallback when Airflow is not running.
datagroup: b1_warehouse_datagroup {
  label: "SAP B1 warehouse load"
  sql_trigger: SELECT max(loaded_at) FROM sap_b1.fact_sales_invoice ;;
  max_cache_age: "24 hours"
}

datagroup: b1_finance_datagroup {
  label: "SAP B1 journal entries load"
  sql_trigger: SELECT max(loaded_at) FROM sap_b1.fact_journal_entry ;;
  max_cache_age: "24 hours"
}

persist_with: b1_warehouse_datagroup

# Several SAP companies share the tables: every row carries its company (the Airflow connection id
# it was read through), every join matches on it, and each explore joins dim_company for the
# company's name in SAP (CompanyDB).

# Profit centres: SAP B1 has up to five cost-accounting dimensions; each document line carries
# one centre per dimension (costing_code .. costing_code5). Every explore joins dimension 1 as
# "Profit Centre"; dimensions 2-5 are joined under their own labels.

explore: sales_invoice_lines {
  label: "Sales (A/R invoice lines)"
  from: fact_sales_invoice_line
  view_name: fact_sales_invoice_line
  sql_always_where: NOT ${fact_sales_invoice_line.is_cancelled} ;;

  join: sales_invoice {
    from: fact_sales_invoice
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${sales_invoice.company} AND ${fact_sales_invoice_line.doc_entry} = ${sales_invoice.doc_entry} ;;
  }
  join: customer {
    from: dim_business_partner
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${customer.company} AND ${fact_sales_invoice_line.card_code} = ${customer.card_code} ;;
  }
  join: dim_item {
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${dim_item.company} AND ${fact_sales_invoice_line.item_code} = ${dim_item.item_code} ;;
  }
  join: dim_gl_account {
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${dim_gl_account.company} AND ${fact_sales_invoice_line.account_code} = ${dim_gl_account.account_code} ;;
  }
  join: profit_center {
    from: dim_profit_center
    view_label: "Profit Centre"
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${profit_center.company} AND ${fact_sales_invoice_line.costing_code} = ${profit_center.center_code} ;;
  }
  join: profit_center_2 {
    from: dim_profit_center
    view_label: "Profit Centre (dimension 2)"
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${profit_center_2.company} AND ${fact_sales_invoice_line.costing_code2} = ${profit_center_2.center_code} ;;
  }
  join: profit_center_3 {
    from: dim_profit_center
    view_label: "Profit Centre (dimension 3)"
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${profit_center_3.company} AND ${fact_sales_invoice_line.costing_code3} = ${profit_center_3.center_code} ;;
  }
  join: profit_center_4 {
    from: dim_profit_center
    view_label: "Profit Centre (dimension 4)"
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${profit_center_4.company} AND ${fact_sales_invoice_line.costing_code4} = ${profit_center_4.center_code} ;;
  }
  join: profit_center_5 {
    from: dim_profit_center
    view_label: "Profit Centre (dimension 5)"
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${profit_center_5.company} AND ${fact_sales_invoice_line.costing_code5} = ${profit_center_5.center_code} ;;
  }
  join: dim_dimension {
    relationship: many_to_one
    sql_on: ${profit_center.company} = ${dim_dimension.company} AND ${profit_center.dimension_code} = ${dim_dimension.dimension_code} ;;
  }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${fact_sales_invoice_line.company} = ${dim_company.company} ;;
  }
}

explore: purchase_invoice_lines {
  label: "Costs (A/P invoice lines)"
  from: fact_purchase_invoice_line
  view_name: fact_purchase_invoice_line
  sql_always_where: NOT ${fact_purchase_invoice_line.is_cancelled} ;;

  join: supplier {
    from: dim_business_partner
    relationship: many_to_one
    sql_on: ${fact_purchase_invoice_line.company} = ${supplier.company} AND ${fact_purchase_invoice_line.card_code} = ${supplier.card_code} ;;
  }
  join: dim_item {
    relationship: many_to_one
    sql_on: ${fact_purchase_invoice_line.company} = ${dim_item.company} AND ${fact_purchase_invoice_line.item_code} = ${dim_item.item_code} ;;
  }
  join: dim_gl_account {
    relationship: many_to_one
    sql_on: ${fact_purchase_invoice_line.company} = ${dim_gl_account.company} AND ${fact_purchase_invoice_line.account_code} = ${dim_gl_account.account_code} ;;
  }
  join: profit_center {
    from: dim_profit_center
    view_label: "Profit Centre"
    relationship: many_to_one
    sql_on: ${fact_purchase_invoice_line.company} = ${profit_center.company} AND ${fact_purchase_invoice_line.costing_code} = ${profit_center.center_code} ;;
  }
  join: profit_center_2 {
    from: dim_profit_center
    view_label: "Profit Centre (dimension 2)"
    relationship: many_to_one
    sql_on: ${fact_purchase_invoice_line.company} = ${profit_center_2.company} AND ${fact_purchase_invoice_line.costing_code2} = ${profit_center_2.center_code} ;;
  }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${fact_purchase_invoice_line.company} = ${dim_company.company} ;;
  }
}

explore: purchase_order_lines {
  label: "Purchase order lines"
  from: fact_purchase_order_line
  view_name: fact_purchase_order_line
  sql_always_where: NOT ${fact_purchase_order_line.is_cancelled} ;;

  join: supplier {
    from: dim_business_partner
    relationship: many_to_one
    sql_on: ${fact_purchase_order_line.company} = ${supplier.company} AND ${fact_purchase_order_line.card_code} = ${supplier.card_code} ;;
  }
  join: dim_item {
    relationship: many_to_one
    sql_on: ${fact_purchase_order_line.company} = ${dim_item.company} AND ${fact_purchase_order_line.item_code} = ${dim_item.item_code} ;;
  }
  join: dim_gl_account {
    relationship: many_to_one
    sql_on: ${fact_purchase_order_line.company} = ${dim_gl_account.company} AND ${fact_purchase_order_line.account_code} = ${dim_gl_account.account_code} ;;
  }
  join: profit_center {
    from: dim_profit_center
    view_label: "Profit Centre"
    relationship: many_to_one
    sql_on: ${fact_purchase_order_line.company} = ${profit_center.company} AND ${fact_purchase_order_line.costing_code} = ${profit_center.center_code} ;;
  }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${fact_purchase_order_line.company} = ${dim_company.company} ;;
  }
}

# Revenue and cost by GL account and profit centre, from the general ledger itself.
explore: journal_entry_lines {
  label: "General ledger (journal entry lines)"
  from: fact_journal_entry_line
  view_name: fact_journal_entry_line
  persist_with: b1_finance_datagroup

  join: dim_gl_account {
    relationship: many_to_one
    sql_on: ${fact_journal_entry_line.company} = ${dim_gl_account.company} AND ${fact_journal_entry_line.account_code} = ${dim_gl_account.account_code} ;;
  }
  join: profit_center {
    from: dim_profit_center
    view_label: "Profit Centre"
    relationship: many_to_one
    sql_on: ${fact_journal_entry_line.company} = ${profit_center.company} AND ${fact_journal_entry_line.costing_code} = ${profit_center.center_code} ;;
  }
  join: profit_center_2 {
    from: dim_profit_center
    view_label: "Profit Centre (dimension 2)"
    relationship: many_to_one
    sql_on: ${fact_journal_entry_line.company} = ${profit_center_2.company} AND ${fact_journal_entry_line.costing_code2} = ${profit_center_2.center_code} ;;
  }
  join: dim_dimension {
    relationship: many_to_one
    sql_on: ${profit_center.company} = ${dim_dimension.company} AND ${profit_center.dimension_code} = ${dim_dimension.dimension_code} ;;
  }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${fact_journal_entry_line.company} = ${dim_company.company} ;;
  }
}

explore: payments {
  label: "Incoming payments"
  from: fact_payment
  view_name: fact_payment

  join: customer {
    from: dim_business_partner
    relationship: many_to_one
    sql_on: ${fact_payment.company} = ${customer.company} AND ${fact_payment.card_code} = ${customer.card_code} ;;
  }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${fact_payment.company} = ${dim_company.company} ;;
  }
}

explore: gl_account_monthly {
  label: "GL balance by month and profit centre (PDT)"
  join: dim_gl_account {
    relationship: many_to_one
    sql_on: ${gl_account_monthly.company} = ${dim_gl_account.company} AND ${gl_account_monthly.account_code} = ${dim_gl_account.account_code} ;;
  }
  join: profit_center {
    from: dim_profit_center
    view_label: "Profit Centre"
    relationship: many_to_one
    sql_on: ${gl_account_monthly.company} = ${profit_center.company} AND ${gl_account_monthly.profit_center_code} = ${profit_center.center_code} ;;
  }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${gl_account_monthly.company} = ${dim_company.company} ;;
  }
}

explore: revenue_by_profit_center {
  label: "Revenue by profit centre (PDT)"
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${revenue_by_profit_center.company} = ${dim_company.company} ;;
  }
}

# Master data. Records deleted in SAP (partners, items, GL accounts, profit centres) stay in the
# warehouse with deleted_at set by the Airflow task check_deletions, and come back (deleted_at
# cleared) when SAP re-creates the same key. These explores hide them by default: to see them,
# set the "Deleted in SAP" filter to Yes (only deleted rows) or to "is any value" (all rows).
# SAP refuses to delete master data that documents use, so the document explores above never
# meet a deleted partner or item through their joins; cancelled documents stay documents,
# excluded by their own is_cancelled filter.

explore: business_partners {
  label: "Business partners"
  from: dim_business_partner
  view_name: dim_business_partner
  always_filter: { filters: [dim_business_partner.is_deleted: "No"] }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${dim_business_partner.company} = ${dim_company.company} ;;
  }
}

explore: items {
  label: "Items"
  from: dim_item
  view_name: dim_item
  always_filter: { filters: [dim_item.is_deleted: "No"] }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${dim_item.company} = ${dim_company.company} ;;
  }
}

explore: gl_accounts {
  label: "Chart of accounts"
  from: dim_gl_account
  view_name: dim_gl_account
  always_filter: { filters: [dim_gl_account.is_deleted: "No"] }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${dim_gl_account.company} = ${dim_company.company} ;;
  }
}

explore: profit_centers {
  label: "Profit centres"
  from: dim_profit_center
  view_name: dim_profit_center
  always_filter: { filters: [dim_profit_center.is_deleted: "No"] }
  join: dim_company {
    view_label: "Company"
    relationship: many_to_one
    sql_on: ${dim_profit_center.company} = ${dim_company.company} ;;
  }
}
