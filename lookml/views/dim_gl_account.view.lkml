# Chart of accounts (SAP ChartOfAccounts) with its hierarchy: parent, level, top-level ancestor
# and path from the root (the warehouse's dim_gl_account_hierarchy view flattens the tree).
view: dim_gl_account {
  derived_table: {
    sql:
      SELECT a.company, a.account_code, a.account_name, a.father_account_code, a.account_level, a.account_type,
             a.is_postable, a.currency, a.balance,
             a.deleted_at, h.root_account_code, h.depth, h.path
      FROM sap_b1.dim_gl_account AS a
      LEFT JOIN sap_b1.dim_gl_account_hierarchy AS h ON h.company = a.company AND h.account_code = a.account_code ;;
  }

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.account_code ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: account_code { label: "GL account code" sql: ${TABLE}.account_code ;; }
  dimension: account_name { label: "GL account" sql: ${TABLE}.account_name ;; }
  dimension: father_account_code { label: "Parent account code" sql: ${TABLE}.father_account_code ;; }
  dimension: account_level { label: "Level" type: number sql: COALESCE(${TABLE}.account_level, ${TABLE}.depth) ;; }
  dimension: account_type {
    label: "Type"
    sql: ${TABLE}.account_type ;;
    html: {% if value == 'at_Revenues' %}Revenue{% elsif value == 'at_Expenses' %}Expense{% else %}Other{% endif %} ;;
  }
  dimension: is_postable { type: yesno sql: ${TABLE}.is_postable ;; }
  dimension: currency { sql: ${TABLE}.currency ;; }
  dimension: root_account_code { label: "Top-level account code" sql: ${TABLE}.root_account_code ;; }
  dimension: path { label: "Account path" sql: ${TABLE}.path ;; }
  # Deleted in SAP: the deletion check (Airflow task check_deletions) sets deleted_at; the row stays.
  dimension_group: deleted { type: time timeframes: [raw, time, date] sql: ${TABLE}.deleted_at ;; }
  dimension: is_deleted {
    label: "Deleted in SAP"
    description: "Yes once SAP no longer holds this GL account; its explore hides these rows unless this filter is changed."
    type: yesno
    sql: ${TABLE}.deleted_at IS NOT NULL ;;
  }
  measure: count { type: count }
}
