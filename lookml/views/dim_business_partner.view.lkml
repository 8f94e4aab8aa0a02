# Customers, suppliers and leads (SAP BusinessPartners).
view: dim_business_partner {
  sql_table_name: sap_b1.dim_business_partner ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.card_code ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: card_code { label: "Code" sql: ${TABLE}.card_code ;; }
  dimension: card_name { label: "Name" sql: ${TABLE}.card_name ;; }
  dimension: card_type { label: "Type" sql: ${TABLE}.card_type ;; }
  dimension: group_code { type: number sql: ${TABLE}.group_code ;; }
  dimension: currency { sql: ${TABLE}.currency ;; }
  dimension: email { sql: ${TABLE}.email ;; }
  dimension: is_valid { type: yesno sql: ${TABLE}.is_valid ;; }
  dimension: is_frozen { type: yesno sql: ${TABLE}.is_frozen ;; }
  dimension: balance { type: number sql: ${TABLE}.balance ;; }
  dimension: external_id { sql: ${TABLE}.external_id ;; }
  # Deleted in SAP: the deletion check (Airflow task check_deletions) sets deleted_at; the row stays.
  dimension_group: deleted { type: time timeframes: [raw, time, date] sql: ${TABLE}.deleted_at ;; }
  dimension: is_deleted {
    label: "Deleted in SAP"
    description: "Yes once SAP no longer holds this partner; its explore hides these rows unless this filter is changed."
    type: yesno
    sql: ${TABLE}.deleted_at IS NOT NULL ;;
  }
  measure: count { type: count }
}
